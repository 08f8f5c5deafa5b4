package builder

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/dockerfile"
)

func TestDestPath(t *testing.T) {
	tests := []struct{ workdir, dest, want string }{
		{"", "/a/b", "/a/b"},
		{"", "/a/b/", "/a/b/"},
		{"/app", ".", "/app/"},
		{"/app", "./", "/app/"},
		{"/app", "sub", "/app/sub"},
		{"/app", "../etc/", "/etc/"},
		{"", "x", "/x"},
		{"/", "/", "/"},
	}
	for _, tt := range tests {
		if got := destPath(tt.workdir, tt.dest); got != tt.want {
			t.Errorf("destPath(%q, %q) = %q, want %q", tt.workdir, tt.dest, got, tt.want)
		}
	}
}

func TestStoreName(t *testing.T) {
	for in, want := range map[string]string{
		"app":                    "app:latest",
		"app:1":                  "app:1",
		"localhost:5000/app":     "localhost:5000/app:latest",
		"localhost:5000/app:2":   "localhost:5000/app:2",
		"r.io/a/b@sha256:abcdef": "r.io/a/b@sha256:abcdef",
	} {
		if got := StoreName(in); got != want {
			t.Errorf("StoreName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRunHistoryText(t *testing.T) {
	sh := []string{"/bin/sh", "-c", "echo hi"}
	a1 := dockerfile.Arg{Key: "A", Value: "1", HasValue: true}
	cases := []struct {
		name string
		args []string
		bArg []dockerfile.Arg
		env  []string
		want string
	}{
		{"args", sh, []dockerfile.Arg{a1, {Key: "B", Value: "x y", HasValue: true}}, nil, "|2 A=1 B=x y /bin/sh -c echo hi"},
		{"exec form", []string{"echo", "hi"}, nil, nil, "echo hi"},
		// BuildKit's runCommandString reads each value from the RUN's
		// environment first.
		{"ENV after ARG wins", sh, []dockerfile.Arg{a1}, []string{"PATH=/bin", "A=2"}, "|1 A=2 /bin/sh -c echo hi"},
		{"ARG without a value keeps the env's", sh, []dockerfile.Arg{{Key: "A"}}, []string{"A=1"}, "|1 A=1 /bin/sh -c echo hi"},
		{"unset arg is empty", sh, []dockerfile.Arg{{Key: "A"}}, []string{"PATH=/bin"}, "|1 A= /bin/sh -c echo hi"},
		{"later env entry wins", sh, []dockerfile.Arg{a1}, []string{"A=2", "A=3"}, "|1 A=3 /bin/sh -c echo hi"},
	}
	for _, c := range cases {
		if got := runCommandString(c.args, c.bArg, c.env); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestRunArgsHeredoc(t *testing.T) {
	c := &instructions.RunCommand{ShellDependantCmdLine: instructions.ShellDependantCmdLine{
		CmdLine: []string{"<<EOF"}, PrependShell: true,
		Files: []instructions.ShellInlineFile{{Name: "EOF", Data: "echo a\necho b\n"}},
	}}
	if got, want := runArgs(c, nil), []string{"/bin/sh", "-c", "echo a\necho b\n"}; !reflect.DeepEqual(got, want) {
		t.Errorf("runArgs = %q, want %q", got, want)
	}
}

// TestChecksum checks ADD --checksum as BuildKit takes it: sha256, sha384
// and sha512 digests of the download, in lowercase hex of the right length.
func TestChecksum(t *testing.T) {
	const data = "hello\n"
	sum256, sum384, sum512 := sha256.Sum256([]byte(data)), sha512.Sum384([]byte(data)), sha512.Sum512([]byte(data))
	good := map[string]bool{
		"": true,
		"sha256:" + hex.EncodeToString(sum256[:]):                           true,
		"sha384:" + hex.EncodeToString(sum384[:]):                           true,
		"sha512:" + hex.EncodeToString(sum512[:]):                           true,
		"sha256:" + hex.EncodeToString(sum512[:32]):                         false,
		"sha512:" + hex.EncodeToString(sum384[:]) + strings.Repeat("0", 32): false,
	}
	for want, ok := range good {
		c, err := newChecksum(want)
		if err != nil {
			t.Fatalf("newChecksum(%q): %v", want, err)
		}
		io.WriteString(c, data)
		if err := c.verify(); (err == nil) != ok {
			t.Errorf("verify(%q): %v, want ok %t", want, err, ok)
		} else if !ok && !strings.Contains(err.Error(), "checksum mismatch") {
			t.Errorf("verify(%q): %v, want a checksum mismatch", want, err)
		}
	}
	for _, bad := range []string{"md5:b1946ac92492d2347c6235b4d2611184", "sha256:abcd", "sha384:" + strings.Repeat("0", 64),
		"sha256:" + strings.ToUpper(hex.EncodeToString(sum256[:])), hex.EncodeToString(sum256[:])} {
		if _, err := newChecksum(bad); err == nil || !strings.Contains(err.Error(), "--checksum="+bad) {
			t.Errorf("newChecksum(%q): %v, want it refused, naming the flag", bad, err)
		}
	}
}

func TestURLBaseAndWorkdir(t *testing.T) {
	for in, want := range map[string]string{"http://h/a/b.tgz?x=1": "b.tgz", "http://h/": "download", "http://h": "download"} {
		if got := urlBase(in); got != want {
			t.Errorf("urlBase(%q) = %q, want %q", in, got, want)
		}
	}
	if got := normalizeWorkdir("/a", "b/../c"); got != "/a/c" {
		t.Errorf("normalizeWorkdir = %q", got)
	}
}
