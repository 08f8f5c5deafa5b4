package binfmt

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Entries as the kernel prints them (copied from a Debian 12 host with qemu-user-static).
const (
	aarch64Entry = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\n" +
		"magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
	armEntry = "disabled\ninterpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\nflags: POF\noffset 0\n" +
		"magic 7f454c4601010100000000000000000002002800\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
	// riscv64's magic under a name that says nothing: the magic decides.
	riscvEntry = "enabled\ninterpreter /opt/emu/rv\nflags: P\noffset 0\n" +
		"magic 7f454c460201010000000000000000000200f300\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
	// big-endian mips64: must not pass for mips64le.
	mips64Entry = "enabled\ninterpreter /usr/libexec/qemu-binfmt/mips64-binfmt-P\nflags: POF\noffset 0\n" +
		"magic 7f454c4602020100000000000000000000020008\nmask ffffffffffffff00fefffffffffffffffffeffff\n"
	s390xEntry = "enabled\ninterpreter /usr/libexec/qemu-binfmt/s390x-binfmt-P\nflags: POF\noffset 0\n" +
		"magic 7f454c4602020100000000000000000000020016\nmask fffffffffffffffcfffffffffffffffffffeffff\n"
	// matches only ET_EXEC (no 0xfe in the e_type mask): PIE binaries would not run.
	staticOnlyEntry = "enabled\ninterpreter /usr/bin/ppc-static-only\nflags: F\noffset 0\n" +
		"magic 7f454c460201010000000000000000000200150000\nmask ffffffffffffff00ffffffffffffffffffffffff00\n"
	jarEntry = "enabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n"
)

// fixture makes a directory shaped like /proc/sys/fs/binfmt_misc and points Root at it.
func fixture(t *testing.T, status string, entries map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if status != "" {
		write(t, filepath.Join(dir, "status"), status+"\n")
		write(t, filepath.Join(dir, "register"), "")
	}
	for name, body := range entries {
		write(t, filepath.Join(dir, name), body)
	}
	old := Root
	Root = dir
	t.Cleanup(func() { Root = old })
	return dir
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func linux(arch, variant string) specs.Platform {
	return specs.Platform{OS: "linux", Architecture: arch, Variant: variant}
}

func TestHandlers(t *testing.T) {
	fixture(t, "enabled", map[string]string{
		"qemu-aarch64": aarch64Entry, "qemu-arm": armEntry, "emu0": riscvEntry,
		"qemu-mips64": mips64Entry, "jar": jarEntry,
	})
	hs, err := Handlers()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hs {
		got = append(got, strings.Join([]string{h.Name, h.Arch, h.Flags, h.Interpreter}, "|"))
	}
	want := []string{
		"emu0|riscv64|P|/opt/emu/rv",
		"jar|||/usr/bin/jexec",
		"qemu-aarch64|arm64|POF|/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
		"qemu-arm|arm|POF|/usr/libexec/qemu-binfmt/arm-binfmt-P",
		"qemu-mips64||POF|/usr/libexec/qemu-binfmt/mips64-binfmt-P",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("handlers:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !hs[2].Enabled || hs[3].Enabled {
		t.Errorf("enabled: qemu-aarch64 %t, qemu-arm %t", hs[2].Enabled, hs[3].Enabled)
	}
	if !hs[2].FixBinary() || hs[0].FixBinary() {
		t.Errorf("F flag: qemu-aarch64 %t, emu0 %t", hs[2].FixBinary(), hs[0].FixBinary())
	}
}

func TestHandlersBadEntry(t *testing.T) {
	fixture(t, "enabled", map[string]string{"qemu-x": "enabled\ninterpreter /x\nmagic 7f45zz\n"})
	if _, err := Handlers(); err == nil || !strings.Contains(err.Error(), "qemu-x: magic") {
		t.Errorf("a bad magic: %v", err)
	}
}

// foreign is a platform this host's CPU does not run: what the emulator is for.
func foreign() (specs.Platform, arch) {
	if runtime.GOARCH == "s390x" {
		return linux("arm64", ""), archs[2]
	}
	return linux("s390x", ""), archs[5]
}

func TestSupports(t *testing.T) {
	fixture(t, "enabled", map[string]string{
		"qemu-aarch64": aarch64Entry, "qemu-arm": armEntry, "emu0": riscvEntry,
		"qemu-mips64": mips64Entry, "ppc": staticOnlyEntry, "qemu-s390x": s390xEntry,
	})
	for _, tc := range []struct {
		p    specs.Platform
		want string
	}{
		{linux(runtime.GOARCH, ""), "native"},
		{linux("riscv64", ""), "emulated by emu0 (/opt/emu/rv)"},
		{linux("s390x", ""), "emulated by qemu-s390x (/usr/libexec/qemu-binfmt/s390x-binfmt-P)"},
		{linux("mips64le", ""), "no emulator"}, // only the big-endian handler
		{linux("ppc64le", ""), "no emulator"},  // only a handler for static binaries
		{linux("loong64", ""), "no emulator"},
	} {
		if tc.p.Architecture == runtime.GOARCH && tc.want != "native" {
			continue
		}
		s, err := Supports(tc.p)
		if err != nil {
			t.Errorf("%s: %v", format(tc.p), err)
			continue
		}
		if got := s.Describe(); got != tc.want {
			t.Errorf("%s: %q, want %q", format(tc.p), got, tc.want)
		}
		if s.OK() != (tc.want != "no emulator") {
			t.Errorf("%s: OK %t", format(tc.p), s.OK())
		}
	}
	if runtime.GOARCH == "amd64" {
		for _, p := range []specs.Platform{linux("arm64", ""), linux("aarch64", "")} {
			if s, err := Supports(p); err != nil || s.Handler == nil || s.Handler.Name != "qemu-aarch64" {
				t.Errorf("%s: %+v %v", format(p), s, err)
			}
		}
		// The arm handler is disabled: arm/v7 has no emulator.
		if s, err := Supports(linux("arm", "v7")); err != nil || s.OK() {
			t.Errorf("arm/v7 with a disabled handler: %+v %v", s, err)
		}
		if s, err := Supports(linux("386", "")); err != nil || !s.Native {
			t.Errorf("386 on amd64: %+v %v", s, err)
		}
	}
}

// TestSupportsDisabled: `echo 0 > status` switches every handler off.
func TestSupportsDisabled(t *testing.T) {
	fixture(t, "disabled", map[string]string{"qemu-s390x": s390xEntry, "qemu-aarch64": aarch64Entry})
	p, _ := foreign()
	if s, err := Supports(p); err != nil || s.OK() {
		t.Errorf("%s with binfmt_misc disabled: %+v %v", format(p), s, err)
	}
}

func TestNotMounted(t *testing.T) {
	fixture(t, "", nil) // the empty directory an unmounted /proc/sys/fs/binfmt_misc is
	if _, err := Handlers(); !errors.Is(err, ErrNotMounted) || err.Error() != "binfmt_misc is not mounted: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc" {
		t.Errorf("Handlers: %v", err)
	}
	p, _ := foreign()
	if _, err := Supports(p); !errors.Is(err, ErrNotMounted) {
		t.Errorf("Supports(%s): %v", format(p), err)
	}
	// The host's own platform needs no binfmt_misc.
	if s, err := Supports(linux(runtime.GOARCH, "")); err != nil || !s.Native {
		t.Errorf("native: %+v %v", s, err)
	}
}

func TestUnknownPlatform(t *testing.T) {
	fixture(t, "enabled", nil)
	for _, p := range []specs.Platform{linux("sparc64", ""), {OS: "windows", Architecture: "amd64"}} {
		if _, err := Supports(p); !errors.Is(err, ErrUnknownPlatform) || !strings.Contains(err.Error(), format(p)) {
			t.Errorf("%s: %v", format(p), err)
		}
	}
}

func TestPlatforms(t *testing.T) {
	var got []string
	for _, p := range Platforms() {
		got = append(got, format(p))
	}
	want := "linux/amd64 linux/386 linux/arm64 linux/arm/v6 linux/arm/v7 linux/ppc64le linux/s390x linux/riscv64 linux/mips64le linux/loong64"
	if strings.Join(got, " ") != want {
		t.Errorf("platforms %s", strings.Join(got, " "))
	}
}

// TestHost reads the real binfmt_misc: Debian's qemu handlers are recognised by their magic
// (the big-endian ones as none of ours), and what Supports says of arm64 is what running
// Debian's arm64 busybox does (testdata/install-test-deps.sh fetches it).
func TestHost(t *testing.T) {
	hs, err := Handlers()
	if errors.Is(err, ErrNotMounted) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"qemu-aarch64": "arm64", "qemu-arm": "arm", "qemu-ppc64le": "ppc64le", "qemu-s390x": "s390x",
		"qemu-riscv64": "riscv64", "qemu-mips64el": "mips64le", "qemu-loongarch64": "loong64",
		"qemu-mips64": "", "qemu-ppc64": "", "qemu-armeb": "", "qemu-aarch64_be": "", "qemu-riscv32": "",
	}
	seen := 0
	for _, h := range hs {
		if w, ok := want[h.Name]; ok {
			seen++
			if h.Arch != w {
				t.Errorf("%s matches %q, want %q", h.Name, h.Arch, w)
			}
		}
	}
	t.Logf("%d handlers, %d of Debian's qemu ones checked", len(hs), seen)

	const bb = "/var/cache/strata-test/arm64/busybox"
	if _, err := os.Stat(bb); err != nil {
		t.Skipf("no arm64 busybox (testdata/install-test-deps.sh fetches it): %v", err)
	}
	s, err := Supports(linux("arm64", ""))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bb, "uname", "-m").CombinedOutput()
	ran := err == nil && strings.TrimSpace(string(out)) == "aarch64"
	if ran != s.OK() {
		t.Errorf("Supports(linux/arm64) = %s, but running %s: %v %q", s.Describe(), bb, err, out)
	}
	t.Logf("linux/arm64: %s", s.Describe())
}
