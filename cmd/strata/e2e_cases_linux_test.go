package main

import (
	"archive/tar"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// e2eCase is one Dockerfile under testdata/e2e/<dir> and what its image must do.
type e2eCase struct {
	name string
	dir  string // under testdata/e2e; name when empty
	// base is a seeded image passed as --build-arg BASE=<registry>/<base>; none when empty.
	base string
	// needs are files added to the build context: busybox.tar.gz and rootfs.tar.gz (the
	// mkrootfs tarball), alpine.tar.gz, busybox-glibc.tar.gz, busybox-musl.tar.gz (from
	// shared/rootfs; the case is skipped without them), files.tar and files.tar.gz (made here).
	needs []string
	args  []string // further build flags
	// url passes the test's HTTP server's file as --build-arg URL.
	url bool
	// want is exactly what the image's entrypoint and cmd print when runc runs them.
	want  string
	check func(t *testing.T, img v1.Image) // further checks of the built image
}

// e2eCases are the images every check is run on: the core cases here, then
// each feature area's (one file each, e2e_case_<area>_linux_test.go).
func e2eCases() []e2eCase {
	var cases []e2eCase
	for _, area := range [][]e2eCase{coreCases(), copyFeatureCases(), remoteCases(), frontendCases(), flagCases()} {
		cases = append(cases, area...)
	}
	return cases
}

func coreCases() []e2eCase {
	return []e2eCase{
		{name: "hello-example", dir: "../examples/hello", needs: []string{"rootfs.tar.gz"},
			want: "hello from strata\nbuilt by strata\n"},
		{name: "scratch-busybox", needs: []string{"busybox.tar.gz"}, want: "ran in busybox\n",
			check: func(t *testing.T, img v1.Image) {
				checkLayerCount(2)(t, img)
				checkDefaultPath(t, img)
			}},
		{name: "user-run", base: "busybox:latest", want: "1000\n50\napp staff\n"},
		{name: "scratch-alpine", needs: []string{"alpine.tar.gz"}, want: "alpine 3.20.3\n"},
		{name: "scratch-busybox-hardlinks", needs: []string{"busybox-musl.tar.gz"},
			want: "hardlinked applets\n1\nmany links\n", check: checkHardlinks},
		{name: "multistage", base: "busybox:latest", want: "artifact from build\nartifact\n",
			check: checkLayerCount(3)},
		{name: "multistage-target", dir: "multistage", base: "busybox:latest", args: []string{"--target", "test"},
			want: "test stage\nartifact from build\n", check: checkLayerCount(3)},
		{name: "metadata", base: "busybox:latest", args: []string{"--build-arg", "VERSION=2.0", "--label", "cli.label=yes"},
			want: "2.0 in /srv/app/data as app args one two\nvia SHELL: hello-from-run\n", check: checkMetadata},
		{name: "heredoc", base: "busybox:latest",
			want: "line one\nline two\ncopied by heredoc\ntabbed heredoc via sh\n"},
		{name: "whiteouts", base: "busybox:latest",
			want: "/o\n/o/new\n/w\n/w/keep\n/w/keep/a\nwhiteouts ok\n", check: checkWhiteouts},
		{name: "dockerignore", base: "busybox:latest",
			want: ".\n./keep.txt\n./logs\n./logs/keep.log\n./sub\n./sub/nested.txt\n"},
		{name: "copy-symlink-dir", base: "busybox:latest",
			want: "copy through a symlink\ncopy through a symlink\nlinks kept\n"},
		{name: "chown-chmod", base: "busybox:latest",
			want: "/owned.txt app staff 644\n/both.txt app app 640\n/usr/local/bin/script.sh root root 750\n" +
				"/data/inner.txt nobody nogroup 644\nscript ran\n"},
		{name: "add-local-tar", base: "busybox:latest", needs: []string{"files.tar", "files.tar.gz"},
			want: "/copied\n/copied/files.tar\n/gz\n/gz/pkg\n/gz/pkg/hardlink.txt\n/gz/pkg/hello.txt\n/gz/pkg/link.txt\n" +
				"/opt\n/opt/pkg\n/opt/pkg/hardlink.txt\n/opt/pkg/hello.txt\n/opt/pkg/link.txt\n" +
				"hello from a tar\nhardlinked\nhello.txt\n"},
		{name: "add-devices", base: "busybox:latest", needs: []string{"devices.tar.gz"},
			want: "/opt/dev/fifo fifo 644 1000:1000 0,0\n/opt/dev/loopX block special file 660 0:6 7,9\n" +
				"/opt/dev/null2 character special file 600 1000:50 1,3\n/opt/dev/ttyX character special file 620 0:5 4,7\n" +
				"/added/dev/loopX block special file 660 0:6 7,9\n/added/dev/null2 character special file 666 0:0 1,3\n" +
				"/added/dev/ttyX character special file 620 0:5 4,7\n"},
		{name: "args-env", base: "busybox:latest", args: []string{"--build-arg", "GREETING=hi"},
			want: "hi, world / env-wins\n"},
		{name: "workdir-copy", base: "busybox:latest",
			want: "/app/sub\na.txt\nb.txt\ndest\nsub\nnested\n"},
		{name: "network", base: "busybox:latest", args: []string{"--network", "none"}, want: "lo\n"},
		{name: "add-url", base: "busybox:latest", url: true,
			want: "/downloaded.txt 600\n/checked/file.txt 600\ndownloaded over http\n"},
		{name: "copy-from-image", want: "copied from an image\nroot\n",
			check: checkLayerCount(2)},
		{name: "registry-alpine", base: "alpine:3.20.3", needs: []string{"alpine.tar.gz"},
			want: "apk-tools 2.14.4\n"},
		{name: "registry-glibc", base: "busybox:1.38.0-glibc", needs: []string{"busybox-glibc.tar.gz"},
			want: "glibc busybox\n"},
	}
}

// checkLayerCount checks the image has n layers: a step that should add none added none.
func checkLayerCount(n int) func(*testing.T, v1.Image) {
	return func(t *testing.T, img v1.Image) {
		t.Helper()
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		if len(layers) != n {
			t.Errorf("image has %d layers, want %d", len(layers), n)
		}
	}
}

// checkHistory checks that every layer has a history entry and every entry says what made it,
// as docker history shows them.
func checkHistory(t *testing.T, img v1.Image) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers := 0
	for i, h := range cf.History {
		if !h.EmptyLayer {
			layers++
		}
		if h.CreatedBy == "" {
			t.Errorf("history[%d] has no created_by", i)
		}
	}
	if layers != len(cf.RootFS.DiffIDs) {
		t.Errorf("history has %d non-empty entries for %d layers", layers, len(cf.RootFS.DiffIDs))
	}
	if cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("config platform is %q/%q, want linux/<arch>", cf.OS, cf.Architecture)
	}
}

// defaultPath is the PATH Docker puts in the config of an image whose base has none.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func checkDefaultPath(t *testing.T, img v1.Image) {
	t.Helper()
	if env := configOf(t, img).Config.Env; !slices.Contains(env, defaultPath) {
		t.Errorf("config Env %q lacks the default %s", env, defaultPath)
	}
}

func checkMetadata(t *testing.T, img v1.Image) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	for _, kv := range []string{"APP_HOME=/srv/app", "APP_VERSION=2.0"} {
		if !slices.Contains(c.Env, kv) {
			t.Errorf("Env %q lacks %s", c.Env, kv)
		}
	}
	if !slices.ContainsFunc(c.Env, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
		t.Errorf("Env %q lacks PATH", c.Env)
	}
	checkEqual(t, "WorkingDir", c.WorkingDir, "/srv/app/data")
	checkEqual(t, "User", c.User, "app")
	checkEqual(t, "StopSignal", c.StopSignal, "SIGTERM")
	checkEqual(t, "Labels", fmt.Sprint(c.Labels), fmt.Sprint(map[string]string{
		"cli.label": "yes", "org.example.name": "metadata case", "version": "2.0"}))
	checkEqual(t, "ExposedPorts", fmt.Sprint(c.ExposedPorts), fmt.Sprint(map[string]struct{}{"53/udp": {}, "8080/tcp": {}}))
	checkEqual(t, "Volumes", fmt.Sprint(c.Volumes), fmt.Sprint(map[string]struct{}{"/srv/app/data": {}}))
	checkEqual(t, "Shell", fmt.Sprintf("%q", c.Shell), `["/bin/sh" "-c" "echo \"via SHELL: $1\" > /shell.txt" "shell"]`)
	checkEqual(t, "Cmd", fmt.Sprintf("%q", c.Cmd), `["one" "two"]`)
	if len(c.Entrypoint) != 4 || c.Entrypoint[0] != "/bin/sh" {
		t.Errorf("Entrypoint = %q", c.Entrypoint)
	}
	hc := c.Healthcheck
	if hc == nil {
		t.Fatal("no Healthcheck in the config")
	}
	checkEqual(t, "Healthcheck", fmt.Sprintf("%q %v %v %d", hc.Test, hc.Interval, hc.Timeout, hc.Retries),
		fmt.Sprintf("%q %v %v %d", []string{"CMD", "true"}, 30*time.Second, 5*time.Second, 2))
}

func checkEqual(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

// checkHardlinks checks the ADD layer kept the busybox applets as hard links: an extractor that
// copied them would still run, but the layer would be hundreds of times larger.
func checkHardlinks(t *testing.T, img v1.Image) {
	t.Helper()
	links := 0
	forEachEntry(t, img, 0, func(h *tar.Header) {
		if h.Typeflag == tar.TypeLink {
			links++
		}
	})
	if links < 100 {
		t.Errorf("first layer has %d hard links, want the rootfs's hundreds", links)
	}
}

// checkWhiteouts checks the RUN layers carry OCI whiteouts for the deleted paths and an opaque
// marker for the directory that was removed and made again.
func checkWhiteouts(t *testing.T, img v1.Image) {
	t.Helper()
	all := strings.Join(slices.Concat(layerEntries(t, img)...), "\n") + "\n"
	for _, want := range []string{"w/.wh.gone\n", "w/.wh.file\n", "o/.wh..wh..opq\n"} {
		if !strings.Contains(all, want) {
			t.Errorf("no layer has the entry %s", strings.TrimSpace(want))
		}
	}
	checkLayerCount(4)(t, img)
}
