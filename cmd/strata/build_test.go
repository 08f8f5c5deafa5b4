package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
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
