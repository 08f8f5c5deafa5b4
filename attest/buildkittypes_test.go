package attest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// provenanceChecker decodes an in-toto statement on stdin as BuildKit's consumers do:
// in-toto-golang's statement header, then the predicate into BuildKit's own provenance
// types (solver/llbsolver/provenance/types, which docker buildx imagetools and BuildKit's
// policy code read), refusing fields those types do not have; it prints the predicate
// marshalled back, so the test sees what BuildKit understood of it.
const provenanceChecker = `package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	intoto "github.com/in-toto/in-toto-golang/in_toto"
	provenancetypes "github.com/moby/buildkit/solver/llbsolver/provenance/types"
)

func main() {
	data, _ := io.ReadAll(os.Stdin)
	var st intoto.Statement
	if err := json.Unmarshal(data, &st); err != nil {
		fail("statement", err)
	}
	if st.Type != "https://in-toto.io/Statement/v1" || len(st.Subject) == 0 || st.Subject[0].Digest["sha256"] == "" {
		fail("statement header", fmt.Errorf("%+v", st.StatementHeader))
	}
	raw, _ := json.Marshal(st.Predicate)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var out any
	switch st.PredicateType {
	case "https://slsa.dev/provenance/v1":
		var p provenancetypes.ProvenancePredicateSLSA1
		if err := dec.Decode(&p); err != nil {
			fail("v1 predicate", err)
		}
		out = p
	case "https://slsa.dev/provenance/v0.2":
		var p provenancetypes.ProvenancePredicateSLSA02
		if err := dec.Decode(&p); err != nil {
			fail("v0.2 predicate", err)
		}
		out = p
	default:
		fail("predicate type", fmt.Errorf("%q", st.PredicateType))
	}
	b, err := json.Marshal(out)
	if err != nil {
		fail("marshal", err)
	}
	os.Stdout.Write(b)
}

func fail(what string, err error) {
	fmt.Fprintln(os.Stderr, what+":", err)
	os.Exit(1)
}
`

// buildChecker builds a program with the module requirements given, from the
// module cache or the Go module proxy (a fresh CI machine has only the
// proxy); the test skips when neither has them.
func buildChecker(t *testing.T, src string, requires ...string) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	dir := t.TempDir()
	mod := "module example.com/checker\n\ngo 1.24\n\nrequire (\n\t" + strings.Join(requires, "\n\t") + "\n)\n"
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644)
	build := exec.Command(goCmd, "build", "-o", "checker", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOSUMDB=off", "GOWORK=off", "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		t.Skipf("checker not buildable (module cache and proxy): %v\n%s", err, out)
	}
	return filepath.Join(dir, "checker")
}

// TestProvenanceReadByBuildKitTypes: BuildKit's own provenance types decode our
// statements (v1 and v0.2, min and max, with a remote context and every kind of step)
// with no unknown field, and what they read back is all we wrote: no field of ours is
// misnamed or misshaped for a consumer.
func TestProvenanceReadByBuildKitTypes(t *testing.T) {
	checker := buildChecker(t, provenanceChecker,
		"github.com/moby/buildkit v0.34.2", "github.com/in-toto/in-toto-golang v0.11.0")
	subj, err := Subjects([]string{"reg.example.com/app:1"}, "linux/amd64", v1.Hash{Algorithm: "sha256", Hex: strings.TrimPrefix(testDigest, "sha256:")})
	if err != nil {
		t.Fatal(err)
	}
	for _, version := range []string{"v1", "v0.2"} {
		for _, mode := range []string{"min", "max"} {
			info := testInfo(t)
			info.Mode, info.SLSAVersion = mode, version
			info.Context, info.ContextDigest = "https://github.com/org/repo.git#main", strings.Repeat("c", 40)
			info.VCSSource, info.VCSRevision = "https://github.com/org/repo.git", strings.Repeat("c", 40)
			info.SSH = []MountRef{{ID: "default"}}
			info.Locals = []string{"vendor"}
			info.NetworkAccess = true
			info.Steps = append(info.Steps,
				Step{CopySrc: []string{"a", "b"}, CopyDest: "/app/", Inputs: []int{1}, StartLine: 4, EndLine: 5},
				Step{CopySrc: []string{"/out"}, CopyDest: "/", Inputs: []int{0, 2}, StartLine: 6})
			st, err := Provenance(subj, info)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := json.Marshal(st)
			cmd := exec.Command(checker)
			cmd.Stdin = bytes.NewReader(data)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Errorf("%s mode=%s: BuildKit's types refuse the statement: %v: %s", version, mode, err, stderr.String())
				continue
			}
			var ours, theirs any
			json.Unmarshal(st.Predicate, &ours)
			if err := json.Unmarshal(out, &theirs); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ours, theirs) {
				t.Errorf("%s mode=%s: BuildKit's types read\n%s\nof\n%s", version, mode, out, st.Predicate)
			}
		}
	}
}
