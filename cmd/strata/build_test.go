package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/strata-build/strata/dockerfile"
)

// runCLI runs the strata command line in-process.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func writeContext(t *testing.T, dockerfile string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBuildPrint(t *testing.T) {
	multi := writeContext(t, "ARG V=1\nFROM alpine:${V} AS a\nFROM scratch AS b\nARG STRATA_TEST_X\nLABEL x=$STRATA_TEST_X\nFROM b\n")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"example", []string{"build", "--print", "../../testdata/examples/hello"},
			[]string{"stage 0 base (lines 3-5)", "stage 1 stage-1 (lines 7-12)", "from: stage 0 base", `  9: ENV GREETING="hello"`}},
		{"build-arg", []string{"build", "--print", "--build-arg", "GREETING=hi", "../../testdata/examples/hello"},
			[]string{`  9: ENV GREETING="hi"`}},
		{"file and target", []string{"build", "--print", "-f", filepath.Join(multi, "Dockerfile"), "--target", "a", "--build-arg", "V=3.20", "."},
			[]string{"from: image alpine:3.20", "target: a"}},
		{"build-arg from environment", []string{"build", "--print", "--build-arg", "STRATA_TEST_X", "--target", "b", multi},
			[]string{`LABEL x="from-env"`}},
		{"platform", []string{"build", "--print", "--platform", "linux/arm64/v8", multi},
			[]string{`TARGETPLATFORM="linux/arm64"`}}, // normalised, as BuildKit does
		{"platforms", []string{"build", "--print", "--platform", "linux/amd64,linux/arm/v7", multi},
			[]string{`TARGETPLATFORM="linux/amd64"`, `TARGETPLATFORM="linux/arm/v7"`, `TARGETVARIANT="v7"`}},
	}
	t.Setenv("STRATA_TEST_X", "from-env")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCLI(t, tt.args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	bad := writeContext(t, "FROM alpine\nFRM alpine\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad Dockerfile", []string{"build", "--print", bad}, filepath.Join(bad, "Dockerfile") + ":2: unknown instruction: FRM"},
		{"missing Dockerfile", []string{"build", "--print", t.TempDir()}, "reading Dockerfile"},
		{"bad platform", []string{"build", "--print", "--platform", "linux/arm64/v8/extra", bad}, `--platform "linux/arm64/v8/extra"`},
		{"build of a bad Dockerfile", []string{"build", "--root", t.TempDir(), "-t", "x", bad}, filepath.Join(bad, "Dockerfile") + ":2: unknown instruction: FRM"},
		{"missing context", []string{"build", "--root", t.TempDir(), filepath.Join(bad, "nothing")}, "build context: stat " + filepath.Join(bad, "nothing")},
		{"bad output", []string{"build", "--root", t.TempDir(), "-o", "dest=x", bad}, "type= is required"},
		{"push without a name", []string{"build", "--root", t.TempDir(), "--push", bad}, "pushing needs a name"},
		{"no context", []string{"build", "--print"}, "accepts 1 arg"},
		{"bad cache-from", []string{"build", "--root", t.TempDir(), "--cache-from", "type=s3,bucket=x", bad}, "type=s3 is not supported"},
		{"cache-to without ref", []string{"build", "--root", t.TempDir(), "--cache-to", "type=registry", bad}, "needs ref="},
		{"cache over the pushed image", []string{"build", "--root", t.TempDir(), "-t", "reg.example/app:1", "--push",
			"--cache-to", "type=registry,ref=reg.example/app:1", bad}, "is also the image's tag"},
		{"cache compression not the build's", []string{"build", "--root", t.TempDir(), "--compression", "zstd",
			"--cache-to", "type=registry,ref=reg.example/c,compression=gzip", bad}, "differs from the build's --compression zstd"},
		{"inline without a push", []string{"build", "--root", t.TempDir(), "--cache-to", "type=inline", bad}, "add --push"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runCLI(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
	_, err := runCLI(t, "build", "--print", bad)
	var de *dockerfile.Error
	if !errors.As(err, &de) || de.Line != 2 {
		t.Errorf("error %v does not carry line 2", err)
	}
}

func TestBuildHelp(t *testing.T) {
	out, err := runCLI(t, "build", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"-t, --tag", "-f, --file", "--build-arg", "--target", "--label", "--network",
		"--no-cache", "-o, --output", "--push", "--compression", "--iidfile", "--metadata-file", "--progress",
		"--root", "--source-date-epoch", "--platform", "--print", "--insecure-registry", "manifest digest"} {
		if !strings.Contains(out, flag) {
			t.Errorf("help lacks %s", flag)
		}
	}
}

// TestBinaryExitStatus runs the built binary, as README's first command
// does, and checks the exit status and the message of a failed parse.
func TestBinaryExitStatus(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "strata")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "build", "--print", "../../testdata/examples/hello").CombinedOutput(); err != nil {
		t.Fatalf("--print of the example: %v\n%s", err, out)
	}
	bad := writeContext(t, "FROM alpine\nCOPY --from=later /a /b\nFROM alpine AS later\n")
	cmd := exec.Command(bin, "build", "--print", bad)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1", err)
	}
	want := "strata: " + filepath.Join(bad, "Dockerfile") + ":2: COPY --from=later: stage later is defined later"
	if !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("stderr %q, want prefix %q", stderr.String(), want)
	}
}

// TestContextDockerfileStaysInTheContext: a context's Dockerfile that is a symlink is
// followed inside the context only, so a repository cannot make strata (often root) read a
// host file into its error output; a symlink to a file in the context works.
func TestContextDockerfileStaysInTheContext(t *testing.T) {
	host := filepath.Join(t.TempDir(), "host-secret")
	if err := os.WriteFile(host, []byte("TOPSECRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := t.TempDir()
	if err := os.Symlink(host, filepath.Join(ctx, "Dockerfile")); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "build", "--print", ctx)
	if err == nil || strings.Contains(out+err.Error(), "TOPSECRET") {
		t.Errorf("a Dockerfile symlink out of the context was read: %v\n%s", err, out)
	}
	inside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(inside, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inside, "sub", "Dockerfile.real"), []byte("FROM scratch\nLABEL a=b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/Dockerfile.real", filepath.Join(inside, "Dockerfile")); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "build", "--print", inside); err != nil || !strings.Contains(out, "LABEL") {
		t.Errorf("a Dockerfile symlink inside the context: %v\n%s", err, out)
	}
}

// TestBuildFlagValues: each bad value of a docker build flag is refused
// with one line naming the flag, before anything is done: the store
// (--root) is never created, the context never read.
func TestBuildFlagValues(t *testing.T) {
	ctx := writeContext(t, "FROM scratch\nLABEL a=b\n")
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-t", "UPPER:tag"}, `-t "UPPER:tag": repository name must be lowercase`},
		{[]string{"-t", "a:b:c"}, `-t "a:b:c": repository can only contain`},
		{[]string{"-t", "app:-x"}, `-t "app:-x": tag "-x" must start with a letter, a digit or _`},
		{[]string{"-t", "app@sha256:0123"}, `-t "app@sha256:0123": a tag cannot hold a digest`},
		{[]string{"--build-arg", "=x"}, `--build-arg "=x": want KEY=VALUE`},
		{[]string{"--build-arg", ""}, `--build-arg "": want KEY=VALUE`},
		{[]string{"--label", "=x"}, `--label "=x": want KEY=VALUE`},
		{[]string{"--add-host", "myhost"}, `--add-host "myhost": want HOST:IP or HOST=IP`},
		{[]string{"--add-host", "myhost:1.2.3"}, `--add-host "myhost:1.2.3": "1.2.3" is not an IP address`},
		{[]string{"--add-host", "myhost=host-gateway"}, `--add-host "myhost=host-gateway": host-gateway is not supported`},
		{[]string{"--add-host", "my host=1.2.3.4"}, `--add-host "my host=1.2.3.4": "my host" is not a host name`},
		{[]string{"--add-host", "a\vb=1.2.3.4"}, `--add-host "a\vb=1.2.3.4": "a\vb" is not a host name`},
		{[]string{"--add-host", "a\x1b[31m=1.2.3.4"}, `"a\x1b[31m" is not a host name`},
		{[]string{"--ulimit", "nofile=2048:1024"}, `--ulimit "nofile=2048:1024": ulimit soft limit must be less than or equal to hard limit`},
		{[]string{"--ulimit", "files=1"}, `--ulimit "files=1": invalid ulimit type: files`},
		{[]string{"--ulimit", "nofile=64:-1"}, `--ulimit "nofile=64:-1": the hard limit unlimited is above strata's own`},
		{[]string{"--shm-size", "12q"}, `--shm-size "12q": want a size in bytes, or with a unit: 64m, 1g`},
		{[]string{"--shm-size", "-1"}, `--shm-size "-1": want a size`},
		{[]string{"--ulimit", "nofile=3"}, `--ulimit "nofile=3": nofile below 16`},
		{[]string{"--provenance", "mode=all"}, `--provenance "mode=all": mode="all": want min or max`},
		{[]string{"--provenance", "version=v2"}, `--provenance "version=v2": version="v2": want v1`},
		{[]string{"--sbom", "generator=x"}, `--sbom "generator=x": generator=x: strata cannot run scanner images`},
		{[]string{"--attest", "type=vex"}, `--attest "type=vex": want type=provenance or type=sbom`},
		{[]string{"--attest", "type=provenance,color=red"}, `unknown key "color"`},
		{[]string{"--attest-referrers"}, `--attest-referrers: no attestation asked for`},
		{[]string{"--platform", "linux/amd64,,linux/arm64"}, `--platform "linux/amd64,,linux/arm64": empty platform in the list`},
		{[]string{"--platform", "linux/amd64,linux/arm64/v8/x"}, `--platform "linux/amd64,linux/arm64/v8/x": linux/arm64/v8/x: invalid platform`},
		{[]string{"--platform", "linux/amd64,linux/arm64", "-o", "type=docker,dest=x.tar"}, `a docker archive holds one platform`},
		{[]string{"-o", "type=image"}, `--output "type=image": unknown type "image"`},
		{[]string{"-o", "type=oci"}, `--output "type=oci": type=oci needs dest=`},
		{[]string{"-o", "type=local,dest=-"}, `--output "type=local,dest=-": type=local writes a directory, not standard output`},
		{[]string{"-o", "type=tar,dest=" + dir}, "is a directory"},
		{[]string{"-o", "type=oci,dest=" + filepath.Join(dir, "missing", "x.tar")}, "no such file or directory"},
		{[]string{"-o", "type=local,dest=" + filepath.Join(file, "out")}, "is not a directory"},
		{[]string{"-o", "type=registry,name=App:1"}, `--output "type=registry,name=App:1": name "App:1": repository name must be lowercase`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "store")
			_, err := runCLI(t, append(append([]string{"build", "--root", root}, tt.args...), ctx)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line containing %q", err, tt.want)
			}
			if _, serr := os.Stat(root); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("the store was touched before the flag was refused: %v", serr)
			}
		})
	}
}

// TestBuildFlagsAccepted: what CI scripts pass to docker buildx build to
// turn attestations off, the legacy builder's no-ops and the sandbox's
// flags build; -q prints the image ID alone on stdout and nothing on
// stderr.
func TestBuildFlagsAccepted(t *testing.T) {
	ctx := writeContext(t, "FROM scratch\nARG USED\nLABEL a=b\n")
	root := t.TempDir()
	args := []string{"build", "--root", root, "-q", "--provenance=false", "--sbom=0", "--attest", "type=sbom,disabled=true",
		"--provenance", "mode=max,disabled=true", "--load", "--rm", "--force-rm", "--add-host", "h:::1", "--ulimit", "nofile=64",
		"--shm-size", "1g", "-t", "strata-test/quiet:1", "--build-arg", "USED=1", "--build-arg", "HTTP_PROXY=http://proxy", ctx}
	var stdout, stderr bytes.Buffer
	root2 := newRootCmd()
	root2.SetOut(&stdout)
	root2.SetErr(&stderr)
	root2.SetArgs(args)
	if err := root2.Execute(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}\n$`).MatchString(stdout.String()) || stderr.Len() != 0 {
		t.Errorf("-q printed stdout %q, stderr %q; want the image ID alone", stdout.String(), stderr.String())
	}
}

// TestUnusedBuildArgWarning: a --build-arg no ARG of the stages the
// target needs declares is named in docker's one warning line; one an ARG
// of a stage --target skips declares counts as unused; the proxy args and
// global ARGs are consumed.
func TestUnusedBuildArgWarning(t *testing.T) {
	ctx := writeContext(t, "ARG GLOBAL\nFROM scratch AS skipped\nARG ONLY_SKIPPED\nFROM scratch AS target\nARG USED\nLABEL a=b\n")
	out, err := runCLI(t, "build", "--root", t.TempDir(), "--progress", "plain", "--target", "target",
		"--build-arg", "USED=1", "--build-arg", "GLOBAL=1", "--build-arg", "https_proxy=x",
		"--build-arg", "ONLY_SKIPPED=1", "--build-arg", "NOPE=1", ctx)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if want := "One or more build-args [NOPE ONLY_SKIPPED] were not consumed"; strings.Count(out, "not consumed") != 1 || !strings.Contains(out, want) {
		t.Errorf("output lacks %q once:\n%s", want, out)
	}
	out, err = runCLI(t, "build", "--root", t.TempDir(), "--progress", "plain", "--target", "target", "--build-arg", "USED=1", ctx)
	if err != nil || strings.Contains(out, "not consumed") {
		t.Errorf("all args used: %v\n%s", err, out)
	}
}

// TestErrorTextClean: errors name what the user gave: a Dockerfile read
// from stdin as <stdin>, not the temporary directory it was put in; a
// missing image once, not once per layer of wrapping.
func TestErrorTextClean(t *testing.T) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetIn(strings.NewReader("FROM scratch\nFRM x\n"))
	root.SetArgs([]string{"build", "--root", t.TempDir(), "-"})
	err := root.Execute()
	if err == nil || !strings.HasPrefix(err.Error(), "<stdin>/Dockerfile:2: unknown instruction: FRM") || strings.Contains(err.Error(), os.TempDir()) {
		t.Errorf("a Dockerfile on stdin: %v", err)
	}
	_, err = runCLI(t, "push", "--root", t.TempDir(), "nope")
	if err == nil || strings.Count(err.Error(), "nope") != 1 {
		t.Errorf("a missing image: %v, want it named once", err)
	}
}
