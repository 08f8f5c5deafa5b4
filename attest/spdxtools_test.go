package attest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// spdxChecker is a program reading an SPDX JSON document on stdin with spdx/tools-golang,
// the library BuildKit decodes SBOM attestations with (and syft's SPDX reader), validating
// it with spdxlib and printing name, version and purl of every package.
const spdxChecker = `package main

import (
	"fmt"
	"os"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdxlib"
)

func main() {
	doc, err := spdxjson.Read(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "read:", err)
		os.Exit(1)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		fmt.Fprintln(os.Stderr, "validate:", err)
		os.Exit(1)
	}
	fmt.Println(doc.SPDXVersion, doc.DocumentNamespace)
	for _, p := range doc.Packages {
		purl := ""
		for _, r := range p.PackageExternalReferences {
			if r.RefType == "purl" {
				purl = r.Locator
			}
		}
		fmt.Printf("%s\t%s\t%s\n", p.PackageName, p.PackageVersion, purl)
	}
}
`

// TestSBOMReadByToolsGolang: BuildKit's own SPDX decoder reads and validates the SBOM and
// finds the packages in it. The checker builds from the module cache or the Go module proxy
// (tools-golang is a BuildKit dependency); the test skips when neither has it.
func TestSBOMReadByToolsGolang(t *testing.T) {
	const fixture = "/work/shared/rootfs/alpine-minirootfs-3.20.3-x86_64.tar.gz"
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/spdxcheck\n\ngo 1.22\n\nrequire github.com/spdx/tools-golang v0.5.7\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(spdxChecker), 0o644)
	build := exec.Command(goCmd, "build", "-o", "spdxcheck", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOSUMDB=off", "GOWORK=off", "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		t.Skipf("spdx/tools-golang v0.5.7 not buildable (module cache and proxy): %v\n%s", err, out)
	}

	layers := []entry{{name: "usr/local/bin/hello", mode: 0o755, data: goBinary(t)}}
	if status, err := os.ReadFile("/var/lib/dpkg/status"); err == nil {
		layers = append(layers, entry{name: "var/lib/dpkg/status", data: status})
	}
	img := imageOf(t, layerOf(t, layers...))
	if _, err := os.Stat(fixture); err == nil {
		img = imageOf(t, mustLayerFromFile(t, fixture), layerOf(t, layers...))
	}
	d, _ := img.Digest()
	subj, _ := Subjects([]string{"app"}, "linux/amd64", d)
	st, err := SBOM(context.Background(), subj, img, SBOMOptions{Created: sbomTime})
	if err != nil {
		t.Fatal(err)
	}
	check := exec.Command(filepath.Join(dir, "spdxcheck"))
	check.Stdin = bytes.NewReader(st.Predicate)
	out, err := check.CombinedOutput()
	if err != nil {
		t.Fatalf("tools-golang refuses the SBOM: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var doc struct{ Packages []json.RawMessage }
	json.Unmarshal(st.Predicate, &doc)
	if !strings.HasPrefix(lines[0], "SPDX-2.3 https://") || len(lines)-1 != len(doc.Packages) {
		t.Fatalf("tools-golang read %d packages of %d: %s", len(lines)-1, len(doc.Packages), out)
	}
	want := []string{"github.com/docker/go-units\tv0.5.0\tpkg:golang/github.com/docker/go-units@v0.5.0"}
	if _, err := os.Stat(fixture); err == nil {
		want = append(want, "musl\t1.2.5-r0\tpkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3")
	}
	for _, w := range want {
		if !strings.Contains(string(out), w+"\n") {
			t.Errorf("tools-golang does not list %q:\n%s", w, out)
		}
	}
}
