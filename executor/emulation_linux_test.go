package executor

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/internal/binfmt"
	"github.com/strata-build/strata/internal/minirootfs"
)

// arm64Busybox is where testdata/install-test-deps.sh puts Debian's arm64 busybox-static.
const arm64Busybox = "/var/cache/strata-test/arm64/busybox"

// newArm64Base makes a busybox rootfs of arm64 binaries, skipping when this host has no
// arm64 busybox or cannot run one.
func newArm64Base(t *testing.T) string {
	t.Helper()
	needRoot(t)
	if _, err := os.Stat(arm64Busybox); err != nil {
		t.Skipf("needs Debian's arm64 busybox at %s (testdata/install-test-deps.sh): %v", arm64Busybox, err)
	}
	s, err := binfmt.Supports(specs.Platform{OS: "linux", Architecture: "arm64"})
	if err != nil || !s.OK() {
		t.Skipf("this host runs no arm64 binaries (%s, %v): install qemu-user-static and run testdata/install-test-deps.sh", s.Describe(), err)
	}
	if s.Native {
		t.Logf("arm64 is this host's own architecture (%s): nothing is emulated", runtime.GOARCH)
	}
	dir := filepath.Join(t.TempDir(), "base")
	if err := minirootfs.Make(dir, minirootfs.Options{Busybox: arm64Busybox}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestForeignArchStep runs an arm64 busybox in the real sandbox, through the kernel's
// binfmt_misc and qemu-user-static on an amd64 host: the step sees an aarch64 machine, its
// file lands in the upper dir, and it ran with the sandbox's seccomp filter and
// no_new_privs (qemu needs neither weakened). Under chroot isolation too, which has no /proc:
// the F flag's interpreter, opened by the kernel at registration, needs no path in the root.
func TestForeignArchStep(t *testing.T) {
	base := newArm64Base(t)
	for _, iso := range []Isolation{IsolationSandbox, IsolationChroot} {
		name := string(iso)
		if name == "" {
			name = "sandbox"
		}
		t.Run(name, func(t *testing.T) {
			if iso == IsolationChroot {
				// Chroot isolation guards the process's real uid; the tests after need it back.
				unguardAfter(t)
			}
			script := "uname -m | tee /arch"
			if iso == IsolationSandbox {
				script += "; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status"
			}
			s := newStep(t, []string{base}, script)
			s.mustRun(t, New(Options{Isolation: iso}))
			lines := strings.Split(s.out(), "\n")
			if lines[0] != "aarch64" {
				t.Errorf("uname -m in an arm64 step: %q\nstderr: %s", lines[0], s.stderr.String())
			}
			if iso == IsolationSandbox {
				if !strings.Contains(s.out(), "NoNewPrivs:\t1") || !strings.Contains(s.out(), "Seccomp:\t2") {
					t.Errorf("the emulated step ran outside the sandbox's limits:\n%s", s.out())
				}
				if got, err := os.ReadFile(filepath.Join(s.spec.UpperDir, "arch")); err != nil || string(got) != "aarch64\n" {
					t.Errorf("/arch in the upper dir: %q, %v", got, err)
				}
			}
		})
	}
}
