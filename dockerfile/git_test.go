package dockerfile

import (
	"strings"
	"testing"
)

// TestGitSourceChecks checks the git sources BuildKit refuses when it
// converts the Dockerfile: refused at Parse with the line, or, when the
// base image's ENV decides the source, by Expand before any step runs. A
// good source is accepted.
func TestGitSourceChecks(t *testing.T) {
	for _, tt := range []struct{ add, want string }{
		{"ADD https://example.com/r.git#main:docs /src", ""},
		{"ADD --keep-git-dir=true git@example.com:r.git /src", ""},
		{"ADD --checksum=0123abcd https://example.com/r.git /src", ""},
		{"ADD --keep-git-dir=false https://example.com/r.git?keep-git-dir=true /src", "Dockerfile:2: ADD https://example.com/r.git?keep-git-dir=true: inconsistent keep-git-dir configuration"},
		{"ADD --checksum=xyz https://example.com/r.git /src", "Dockerfile:2: ADD --checksum=xyz https://example.com/r.git: invalid checksum for a git source"},
		{"ADD https://example.com/r.git?mtime=now /src", `Dockerfile:2: ADD https://example.com/r.git?mtime=now: invalid mtime value: "now"`},
		{"ADD https://example.com/r.git?fetch-by-commit=true /src", "Dockerfile:2: ADD https://example.com/r.git?fetch-by-commit=true: fetch-by-commit requires a checksum"},
	} {
		_, err := Parse([]byte("FROM scratch\n"+tt.add+"\n"), Options{File: "Dockerfile"})
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)) {
			t.Errorf("%s: Parse error %v, want %q", tt.add, err, tt.want)
		}
	}
	g, err := Parse([]byte("FROM base\nADD --keep-git-dir=false $REPO /src\n"), Options{File: "Dockerfile"})
	if err != nil {
		t.Fatalf("Parse refused what only the image decides: %v", err)
	}
	_, err = g.Target.Expand(ImageState([]string{"REPO=https://example.com/r.git?keep-git-dir=1"}, nil))
	if want := "Dockerfile:2: ADD https://example.com/r.git?keep-git-dir=1: inconsistent keep-git-dir configuration"; err == nil || err.Error() != want {
		t.Errorf("Expand: %v, want %q", err, want)
	}
}
