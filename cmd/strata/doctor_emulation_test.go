//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/strata-build/strata/internal/binfmt"
	"github.com/strata-build/strata/internal/rootless"
)

// Entries as the kernel prints them (Debian 12's qemu-user-static), and two made up: a
// handler registered without F, and a big-endian one strata builds nothing for.
const (
	aarch64Entry = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\n" +
		"magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
	armDisabledEntry = "disabled\ninterpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\nflags: POF\noffset 0\n" +
		"magic 7f454c4601010100000000000000000002002800\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
	riscvNoFEntry = "enabled\ninterpreter /usr/bin/qemu-riscv64\nflags: P\noffset 0\n" +
		"magic 7f454c460201010000000000000000000200f300\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
	mips64Entry = "enabled\ninterpreter /usr/libexec/qemu-binfmt/mips64-binfmt-P\nflags: POF\noffset 0\n" +
		"magic 7f454c4602020100000000000000000000020008\nmask ffffffffffffff00fefffffffffffffffffeffff\n"
)

// binfmtFixture points internal/binfmt at a directory shaped like /proc/sys/fs/binfmt_misc,
// unmounted (empty) when entries is nil.
func binfmtFixture(t *testing.T, entries map[string]string) {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skip("the expected reports are an amd64 host's")
	}
	dir := t.TempDir()
	if entries != nil {
		entries["status"], entries["register"] = "enabled\n", ""
	}
	for name, body := range entries {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := binfmt.Root
	binfmt.Root = dir
	t.Cleanup(func() { binfmt.Root = old })
}

func emulationText(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	if err := writeEmulationText(&b, probeEmulation()); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestDoctorEmulationText: each handler of an architecture strata builds with its flags and
// interpreter, a missing F flag and a disabled handler said, the others on one line; the
// platforms RUN runs for, the others with the fix.
func TestDoctorEmulationText(t *testing.T) {
	binfmtFixture(t, map[string]string{"qemu-aarch64": aarch64Entry, "qemu-arm": armDisabledEntry, "rv": riscvNoFEntry, "qemu-mips64": mips64Entry})
	want := "emulation:\n" +
		"  binfmt_misc: mounted\n" +
		"  qemu-aarch64  arm64    flags POF  /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n" +
		"  qemu-arm      arm      flags POF  /usr/libexec/qemu-binfmt/arm-binfmt-P  (disabled)\n" +
		"  rv            riscv64  flags P    /usr/bin/qemu-riscv64  " + noFixBinary + "\n" +
		"  1 other handlers, for architectures strata does not build: qemu-mips64\n" +
		"RUN steps run for: linux/amd64 (native), linux/386 (native), linux/arm64\n" +
		"RUN steps cannot run for: linux/arm/v6, linux/arm/v7, linux/ppc64le, linux/s390x, linux/riscv64, linux/mips64le, linux/loong64\n" +
		"  fix: " + emulationFix + "\n"
	if got := emulationText(t); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestDoctorEmulationNotMounted(t *testing.T) {
	binfmtFixture(t, nil)
	want := "emulation:\n" +
		"  binfmt_misc: binfmt_misc is not mounted: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc\n" +
		"RUN steps run for: linux/amd64 (native), linux/386 (native)\n" +
		"RUN steps cannot run for: linux/arm64, linux/arm/v6, linux/arm/v7, linux/ppc64le, linux/s390x, linux/riscv64, linux/mips64le, linux/loong64\n" +
		"  fix: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; " + emulationFix + "\n"
	if got := emulationText(t); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// doctorEmulationJSON is the emulation object of --format json.
type doctorEmulationJSON struct {
	BinfmtMisc string `json:"binfmt_misc"`
	Handlers   []struct {
		Name, Architecture, Interpreter, Flags, Note string
		Enabled                                      bool
		FixBinary                                    bool `json:"fix_binary"`
	}
	Platforms []struct {
		Platform, How, Handler, Detail string
		Runs                           bool
	}
	Fix string
}

func TestDoctorEmulationJSON(t *testing.T) {
	binfmtFixture(t, map[string]string{"qemu-aarch64": aarch64Entry, "rv": riscvNoFEntry})
	var b bytes.Buffer
	if err := writeDoctorJSON(&b, rootless.Report{Mode: "m"}, probeEmulation()); err != nil {
		t.Fatal(err)
	}
	var out struct{ Emulation doctorEmulationJSON }
	if err := json.Unmarshal(b.Bytes(), &out); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	e := out.Emulation
	if e.BinfmtMisc != "mounted" || len(e.Handlers) != 2 || len(e.Platforms) != 10 || e.Fix != emulationFix {
		t.Fatalf("emulation: %+v", e)
	}
	if h := e.Handlers[0]; h.Name != "qemu-aarch64" || h.Architecture != "arm64" || h.Flags != "POF" || !h.FixBinary || !h.Enabled || h.Note != "" {
		t.Errorf("qemu-aarch64: %+v", h)
	}
	if h := e.Handlers[1]; h.Name != "rv" || h.Architecture != "riscv64" || h.FixBinary || h.Note != noFixBinary {
		t.Errorf("rv: %+v", h)
	}
	runs := map[string]string{}
	for _, p := range e.Platforms {
		runs[p.Platform] = strings.Join([]string{map[bool]string{true: "runs", false: "no"}[p.Runs], p.How, p.Handler}, " ")
	}
	for p, want := range map[string]string{
		"linux/amd64": "runs native ", "linux/386": "runs native ", "linux/arm64": "runs emulated qemu-aarch64",
		"linux/riscv64": "no emulated rv", "linux/s390x": "no  ",
	} {
		if runs[p] != want {
			t.Errorf("%s: %q, want %q", p, runs[p], want)
		}
	}
}

// TestDoctorEmulationHost: on this host, what doctor says of linux/arm64 is what running
// Debian's arm64 busybox does.
func TestDoctorEmulationHost(t *testing.T) {
	const bb = "/var/cache/strata-test/arm64/busybox"
	if _, err := os.Stat(bb); err != nil {
		t.Skipf("no arm64 busybox (testdata/install-test-deps.sh fetches it): %v", err)
	}
	e := probeEmulation()
	var arm64 *struct{ runs bool }
	for _, p := range e.Platforms {
		if p.Platform == "linux/arm64" {
			arm64 = &struct{ runs bool }{p.Runs}
		}
	}
	if arm64 == nil {
		t.Fatalf("no linux/arm64 in %+v", e.Platforms)
	}
	out, err := exec.Command(bb, "uname", "-m").CombinedOutput()
	ran := err == nil && strings.TrimSpace(string(out)) == "aarch64"
	if ran != arm64.runs {
		t.Errorf("doctor says linux/arm64 runs: %t; running %s: %v %q", arm64.runs, bb, err, out)
	}
	text := emulationText(t)
	if ran && !strings.Contains(text, "linux/arm64") {
		t.Errorf("no linux/arm64 in:\n%s", text)
	}
}
