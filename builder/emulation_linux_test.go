package builder

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/internal/binfmt"
	"github.com/strata-build/strata/internal/minirootfs"
	"github.com/strata-build/strata/layer"
)

// s390xEntry is Debian's qemu-s390x entry as the kernel prints it; s390x stands for a
// foreign platform (no CI host is one).
const s390xEntry = "enabled\ninterpreter /usr/libexec/qemu-binfmt/s390x-binfmt-P\nflags: %s\noffset 0\n" +
	"magic 7f454c4602020100000000000000000000020016\nmask fffffffffffffffcfffffffffffffffffffeffff\n"

// binfmtFixture points internal/binfmt at a directory shaped like /proc/sys/fs/binfmt_misc:
// mounted unless mounted is false, with the s390x handler when flags is not "".
func binfmtFixture(t *testing.T, mounted bool, flags string) {
	t.Helper()
	dir := t.TempDir()
	if mounted {
		for name, body := range map[string]string{"status": "enabled\n", "register": ""} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if flags != "" {
		if err := os.WriteFile(filepath.Join(dir, "qemu-s390x"), []byte(strings.Replace(s390xEntry, "%s", flags, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := binfmt.Root
	binfmt.Root = dir
	t.Cleanup(func() { binfmt.Root = old })
}

// emulationBuild is a build of src for linux/s390x on this host, RUN steps going to runner.
func emulationBuild(t *testing.T, src string, runner Runner) *build {
	t.Helper()
	if runtime.GOARCH == "s390x" {
		t.Skip("s390x is this host's own platform")
	}
	g, err := dockerfile.Parse([]byte(src), dockerfile.Options{
		File:          "Dockerfile",
		Platform:      specs.Platform{OS: "linux", Architecture: "s390x"},
		BuildPlatform: specs.Platform{OS: "linux", Architecture: runtime.GOARCH},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &build{opts: Options{Graph: g, Runner: runner}}
}

// A cross-compiling Dockerfile: its RUN steps on the build platform, one stage of the target's.
const crossDockerfile = `FROM --platform=$BUILDPLATFORM scratch AS tools
RUN make tools
FROM scratch
COPY --from=tools /out /out
`

// A Dockerfile whose target stage runs its own binaries from line 5.
const foreignRunDockerfile = crossDockerfile + `RUN /out/self-test
RUN echo done
`

func TestCheckEmulation(t *testing.T) {
	sandbox := executor.New(executor.Options{})
	for _, tc := range []struct {
		name    string
		src     string
		mounted bool
		flags   string // the s390x handler's, "" for none
		runner  Runner
		want    string // "" when the build may go on
	}{
		{name: "no handler", src: foreignRunDockerfile, mounted: true, runner: sandbox,
			want: "Dockerfile:5: RUN for linux/s390x needs an emulator: no binfmt_misc handler runs s390x binaries here; install Debian's qemu-user-static (apt-get install qemu-user-static) or see strata doctor"},
		{name: "handler", src: foreignRunDockerfile, mounted: true, flags: "POF", runner: sandbox},
		{name: "handler without F", src: foreignRunDockerfile, mounted: true, flags: "PO", runner: sandbox,
			want: "Dockerfile:5: RUN for linux/s390x needs an emulator the sandbox can reach: the binfmt_misc handler qemu-s390x (/usr/libexec/qemu-binfmt/s390x-binfmt-P) lacks the F flag; register it with F (as Debian's /usr/lib/binfmt.d files do) or see strata doctor"},
		{name: "not mounted", src: foreignRunDockerfile, runner: sandbox,
			want: "Dockerfile:5: RUN for linux/s390x needs an emulator: binfmt_misc is not mounted: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc"},
		// The target's stage only copies: its RUN runs on the build platform.
		{name: "cross-compiling, not mounted", src: crossDockerfile, runner: sandbox},
		// A stage FROM a build-platform stage runs as its parent: natively.
		{name: "child of a build-platform stage, not mounted", src: crossDockerfile + "FROM tools AS more\nRUN make more\n", runner: sandbox},
		// A fake runner execs nothing on this host.
		{name: "not the sandbox", src: foreignRunDockerfile, runner: &fakeRunner{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			binfmtFixture(t, tc.mounted, tc.flags)
			err := emulationBuild(t, tc.src, tc.runner).checkEmulation()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("checkEmulation:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestCheckEmulationHost asks the real binfmt_misc about linux/arm64: what install-test-deps.sh
// registers lets an arm64 RUN through; the host's own platform always goes through.
func TestCheckEmulationHost(t *testing.T) {
	if err := canRun(specs.Platform{OS: "linux", Architecture: runtime.GOARCH}); err != nil {
		t.Errorf("the host's own platform: %v", err)
	}
	s, err := binfmt.Supports(specs.Platform{OS: "linux", Architecture: "arm64"})
	if err != nil || !s.OK() {
		t.Skipf("no arm64 emulator here (%s, %v): testdata/install-test-deps.sh registers qemu-user-static's", s.Describe(), err)
	}
	if err := canRun(specs.Platform{OS: "linux", Architecture: "arm64"}); err != nil {
		t.Errorf("linux/arm64 with %s: %v", s.Describe(), err)
	}
}

// arm64Busybox is where testdata/install-test-deps.sh puts Debian's arm64 busybox-static.
const arm64Busybox = "/var/cache/strata-test/arm64/busybox"

// TestRealForeignBuild builds a linux/arm64 image on this host with the real sandbox: its
// RUN steps are arm64 busybox, run through binfmt_misc and qemu-user-static, and see an
// aarch64 machine; the image says arm64.
func TestRealForeignBuild(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat(arm64Busybox); err != nil {
		t.Skipf("needs Debian's arm64 busybox at %s (testdata/install-test-deps.sh): %v", arm64Busybox, err)
	}
	arm64 := specs.Platform{OS: "linux", Architecture: "arm64"}
	if err := canRun(arm64); err != nil {
		t.Skipf("%v (testdata/install-test-deps.sh registers qemu-user-static's handlers)", err)
	}
	tb := newTestBuild(t, nil)
	tb.runner = executor.New(executor.Options{})
	epoch := time.Unix(1700000000, 0)
	tb.epoch = &epoch
	tree := t.TempDir()
	if err := minirootfs.Make(tree, minirootfs.Options{Busybox: arm64Busybox}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(tb.dir, "rootfs.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if err := layer.WriteTar(context.Background(), f, tree, layer.WriteOptions{Source: layer.FromDir}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	src := `FROM scratch
ADD rootfs.tar /
RUN uname -m > /arch
`
	res, out := tb.mustBuild(src, func(o *Options) {
		g, err := dockerfile.Parse([]byte(src), dockerfile.Options{Platform: arm64, BuildPlatform: specs.Platform{OS: "linux", Architecture: runtime.GOARCH}})
		if err != nil {
			t.Fatal(err)
		}
		o.Graph = g
	})
	if got, err := readImageFile(t, res, "arch"); err != nil || got != "aarch64\n" {
		t.Errorf("uname -m in an arm64 RUN: %q, %v\n%s", got, err, out)
	}
	if cfg := configOf(t, res.Image); cfg.Architecture != "arm64" || cfg.OS != "linux" {
		t.Errorf("the image is %s/%s, want linux/arm64", cfg.OS, cfg.Architecture)
	}
}
