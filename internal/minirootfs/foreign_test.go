package minirootfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// arm64Busybox is where testdata/install-test-deps.sh puts Debian's arm64 busybox-static.
const arm64Busybox = "/var/cache/strata-test/arm64/busybox"

func needArm64Busybox(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(arm64Busybox); err != nil {
		t.Skipf("needs Debian's arm64 busybox at %s (testdata/install-test-deps.sh): %v", arm64Busybox, err)
	}
	if _, err := exec.LookPath("qemu-aarch64-static"); err != nil {
		t.Skipf("needs qemu-aarch64-static (Debian's qemu-user-static): %v", err)
	}
}

// TestMakeForeign makes an arm64 tree on this host: the same bytes twice, the arm64 binary as
// bin/busybox, and the applet links it lists itself, through binfmt_misc or qemu directly.
func TestMakeForeign(t *testing.T) {
	needArm64Busybox(t)
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	for _, dir := range []string{a, b} {
		if err := Make(dir, Options{Busybox: arm64Busybox, ModTime: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	fa := fingerprint(t, a)
	if fb := fingerprint(t, b); fa != fb {
		t.Errorf("two arm64 trees from the same busybox differ:\n%s\n---\n%s", fa, fb)
	}
	want, err := os.ReadFile(arm64Busybox)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(a, "bin/busybox")); err != nil || !bytes.Equal(got, want) {
		t.Errorf("bin/busybox is not the arm64 binary (%d bytes, %v)", len(got), err)
	}
	for _, applet := range []string{"bin/sh", "bin/uname", "usr/bin/env"} {
		if target, err := os.Readlink(filepath.Join(a, applet)); err != nil || target != "/bin/busybox" {
			t.Errorf("%s: %q, %v", applet, target, err)
		}
	}

	id, err := checkStatic(arm64Busybox)
	if err != nil {
		t.Fatal(err)
	}
	if id.qemuName() != "aarch64" {
		t.Errorf("the arm64 busybox is %q to qemu", id.qemuName())
	}
	// Through the kernel's handler (or qemu when none) and through qemu by hand: one list.
	viaKernel, err := listApplets(arm64Busybox, id)
	if err != nil {
		t.Fatal(err)
	}
	qemu, _ := exec.LookPath("qemu-aarch64-static")
	out, err := runList(qemu, arm64Busybox)
	if err != nil {
		t.Fatal(err)
	}
	var viaQemu []string
	for _, l := range strings.Fields(out) {
		if l != "bin/busybox" {
			viaQemu = append(viaQemu, l)
		}
	}
	slices.Sort(viaQemu)
	if !slices.Equal(viaKernel, viaQemu) || len(viaKernel) < 100 {
		t.Errorf("applets: %d listed through the kernel, %d through qemu", len(viaKernel), len(viaQemu))
	}
}

// TestMakeRefusesUnrunnableBusybox: a static ELF of an architecture neither the CPU nor qemu
// runs is refused naming it and the package that would.
func TestMakeRefusesUnrunnableBusybox(t *testing.T) {
	needArm64Busybox(t)
	b, err := os.ReadFile(arm64Busybox)
	if err != nil {
		t.Fatal(err)
	}
	// e_machine 0x5a (MN10300): no qemu, no binfmt handler.
	b[18], b[19] = 0x5a, 0
	p := filepath.Join(t.TempDir(), "busybox")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	err = Make(filepath.Join(t.TempDir(), "r"), Options{Busybox: p})
	if err == nil || !strings.Contains(err.Error(), "this host cannot run: install qemu-user-static") {
		t.Errorf("Make with an MN10300 busybox: %v", err)
	}
}
