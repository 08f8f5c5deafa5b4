package builder

import (
	"reflect"
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

func TestInsecureRegistries(t *testing.T) {
	r := Registry{Insecure: []string{"reg.lan:5000"}}
	for host, want := range map[string]bool{
		"localhost:5000": true, "127.0.0.1:1234": true, "localhost": true,
		"reg.lan:5000": true, "reg.lan:5001": false, "index.docker.io": false,
	} {
		if got := r.isInsecure(host); got != want {
			t.Errorf("isInsecure(%q) = %t, want %t", host, got, want)
		}
	}
}

func TestRunHistoryText(t *testing.T) {
	args := []dockerfile.Arg{{Key: "A", Value: "1", HasValue: true}, {Key: "B", Value: "x y", HasValue: true}}
	got := runCommandString([]string{"/bin/sh", "-c", "echo hi"}, args)
	if want := "|2 A=1 B=x y /bin/sh -c echo hi"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := runCommandString([]string{"echo", "hi"}, nil); got != "echo hi" {
		t.Errorf("exec form: %q", got)
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

func TestChecksum(t *testing.T) {
	sum := []byte{0xab, 0xcd}
	for want, ok := range map[string]bool{"": true, "sha256:abcd": true, "sha256:abce": false, "md5:abcd": false} {
		if err := checkChecksum(want, sum); (err == nil) != ok {
			t.Errorf("checkChecksum(%q): %v", want, err)
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
