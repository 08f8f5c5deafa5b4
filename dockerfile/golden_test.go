package dockerfile

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/dockerfile")

const goldenDir = "../testdata/dockerfile"

// TestGolden parses every testdata/dockerfile/<case>/Dockerfile with the
// options in <case>/options and compares the printed graph with graph.txt,
// or the error with error.txt.
func TestGolden(t *testing.T) {
	cases, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 40 {
		t.Errorf("only %d golden cases, want at least 40", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name(), func(t *testing.T) {
			dir := filepath.Join(goldenDir, c.Name())
			src, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
			if err != nil {
				t.Fatal(err)
			}
			opts := readOptions(t, filepath.Join(dir, "options"))
			g, err := Parse(src, opts)
			if err != nil {
				var de *Error
				if !errors.As(err, &de) {
					t.Errorf("error %v (%T) is not a *dockerfile.Error", err, err)
				}
				compareGolden(t, filepath.Join(dir, "error.txt"), []byte(err.Error()+"\n"), filepath.Join(dir, "graph.txt"))
				return
			}
			var buf bytes.Buffer
			if err := g.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			compareGolden(t, filepath.Join(dir, "graph.txt"), buf.Bytes(), filepath.Join(dir, "error.txt"))
		})
	}
}

// readOptions reads a case's options: lines of "build-arg K=V", "target T",
// "platform os/arch[/variant]". Both platforms default to linux/amd64 so
// the golden files do not depend on the host.
func readOptions(t *testing.T, path string) Options {
	t.Helper()
	amd64 := specs.Platform{OS: "linux", Architecture: "amd64"}
	opts := Options{File: "Dockerfile", BuildArgs: map[string]string{}, Platform: amd64, BuildPlatform: amd64}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return opts
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), " ")
		switch key {
		case "build-arg":
			k, v, _ := strings.Cut(val, "=")
			opts.BuildArgs[k] = v
		case "target":
			opts.Target = val
		case "platform":
			parts := strings.Split(val, "/")
			opts.Platform = specs.Platform{OS: parts[0], Architecture: parts[1]}
			if len(parts) > 2 {
				opts.Platform.Variant = parts[2]
			}
		case "":
		default:
			t.Fatalf("%s: unknown option %q", path, key)
		}
	}
	return opts
}

// compareGolden checks got against the golden file, or rewrites it (and
// removes the other kind of golden file) under -update.
func compareGolden(t *testing.T, path string, got []byte, other string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Remove(other)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (got:\n%s)", err, got)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs; got:\n%s\nwant:\n%s", path, got, want)
	}
}
