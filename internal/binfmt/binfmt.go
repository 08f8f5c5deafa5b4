// Package binfmt tells whether this host can run the binaries of a platform: natively, or
// through an emulator the kernel's binfmt_misc hands them to (Debian's qemu-user-static).
// A RUN step of a foreign-platform stage runs only where one of them holds.
//
// A handler is recognised by what it matches, not by its name: the ELF header of each
// architecture (class, byte order, e_machine) is tested against the handler's magic and mask
// as the kernel tests a binary's first bytes.
package binfmt

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Root is the binfmt_misc directory read. Tests point it at a fixture shaped like it.
var Root = "/proc/sys/fs/binfmt_misc"

// ErrNotMounted is the state of a host whose binfmt_misc is not mounted (or not in its
// kernel): no emulator can run, whatever is installed.
var ErrNotMounted = errors.New("binfmt_misc is not mounted: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc")

// Handler is one entry of binfmt_misc.
type Handler struct {
	// Name is the entry's file name ("qemu-aarch64").
	Name string
	// Enabled is false for an entry switched off (echo 0 > entry).
	Enabled bool
	// Interpreter is the program the kernel runs the binary with.
	Interpreter string
	// Flags are the entry's flag letters ("POF").
	Flags string
	// Offset, Magic and Mask say which bytes of a file the entry matches; Magic is nil for
	// an entry that matches a file name extension.
	Offset int
	Magic  []byte
	Mask   []byte
	// Arch is the architecture, as OCI names it ("arm64", "arm"), whose ELF binaries the
	// entry matches; "" for none of those this package knows.
	Arch string
}

// FixBinary reports the F flag: the kernel opened the interpreter when the entry was
// registered. Without it, the interpreter is looked up by path when a binary starts, which
// fails inside a chroot or pivot_root that lacks that path: a RUN step's sandbox.
func (h Handler) FixBinary() bool { return strings.Contains(h.Flags, "F") }

// arch is how an architecture's ELF binaries start.
type arch struct {
	name    string // OCI architecture
	class   elfClass
	big     bool // big-endian
	machine uint16
}

type elfClass byte

const (
	elf32 elfClass = 1
	elf64 elfClass = 2
)

// archs are the architectures Supports knows, in the order doctor reports them.
var archs = []arch{
	{"amd64", elf64, false, 62},
	{"386", elf32, false, 3},
	{"arm64", elf64, false, 183},
	{"arm", elf32, false, 40},
	{"ppc64le", elf64, false, 21},
	{"s390x", elf64, true, 22},
	{"riscv64", elf64, false, 243},
	{"mips64le", elf64, false, 8},
	{"loong64", elf64, false, 258},
}

// Platforms are the platforms doctor reports on: every architecture above, arm with the
// variants images are published for.
func Platforms() []specs.Platform {
	var out []specs.Platform
	for _, a := range archs {
		if a.name == "arm" {
			out = append(out, specs.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, specs.Platform{OS: "linux", Architecture: "arm", Variant: "v7"})
			continue
		}
		out = append(out, specs.Platform{OS: "linux", Architecture: a.name})
	}
	return out
}

// headers are the first bytes of an executable (ET_EXEC) and a position-independent one
// (ET_DYN) of the architecture, the rest of the buffer zero; the kernel matches a binary's
// first bytes the same way.
func (a arch) headers() [][]byte {
	var out [][]byte
	for _, typ := range []uint16{2, 3} {
		h := make([]byte, 128)
		copy(h, "\x7fELF")
		h[4] = byte(a.class)
		var order binary.ByteOrder = binary.LittleEndian
		h[5] = 1
		if a.big {
			order, h[5] = binary.BigEndian, 2
		}
		h[6] = 1 // EI_VERSION
		order.PutUint16(h[16:], typ)
		order.PutUint16(h[18:], a.machine)
		order.PutUint32(h[20:], 1) // e_version
		out = append(out, h)
	}
	return out
}

// matches reports whether the entry takes data as the kernel decides it: each byte of magic
// equal to the file's at Offset where the mask has bits.
func (h Handler) matches(data []byte) bool {
	if h.Magic == nil || h.Offset < 0 || h.Offset+len(h.Magic) > len(data) {
		return false
	}
	for i, m := range h.Magic {
		mask := byte(0xff)
		if h.Mask != nil {
			mask = h.Mask[i]
		}
		if (data[h.Offset+i]^m)&mask != 0 {
			return false
		}
	}
	return true
}

// runs reports whether the entry takes both kinds of the architecture's executables: one
// matching only static ones would fail most images.
func (h Handler) runs(a arch) bool {
	for _, hdr := range a.headers() {
		if !h.matches(hdr) {
			return false
		}
	}
	return true
}

// Handlers reads every entry of Root, enabled or not, sorted by name. A Root without its
// status file is ErrNotMounted.
func Handlers() ([]Handler, error) {
	if _, err := enabled(); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(Root)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", Root, err)
	}
	var out []Handler
	for _, e := range ents {
		if n := e.Name(); n == "register" || n == "status" || e.IsDir() {
			continue
		}
		h, err := readHandler(filepath.Join(Root, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // unregistered while we listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b Handler) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Enabled reports whether binfmt_misc as a whole is on (echo 0 > status switches every
// handler off); ErrNotMounted when it is not mounted.
func Enabled() (bool, error) { return enabled() }

// enabled reads Root/status: binfmt_misc as a whole can be switched off.
func enabled() (bool, error) {
	b, err := os.ReadFile(filepath.Join(Root, "status"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, ErrNotMounted
	}
	if err != nil {
		return false, fmt.Errorf("reading binfmt_misc status %s: %w", filepath.Join(Root, "status"), err)
	}
	return strings.TrimSpace(string(b)) == "enabled", nil
}

// readHandler parses an entry file as the kernel writes it:
//
//	enabled
//	interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
//	flags: POF
//	offset 0
//	magic 7f454c46...
//	mask ffffffff...
//
// (an extension entry has "extension .ext" instead of offset, magic and mask).
func readHandler(path string) (Handler, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Handler{}, fmt.Errorf("reading binfmt_misc entry %s: %w", path, err)
	}
	h := Handler{Name: filepath.Base(path)}
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		key, val, _ := strings.Cut(line, " ")
		switch {
		case i == 0 && (line == "enabled" || line == "disabled"):
			h.Enabled = line == "enabled"
		case key == "interpreter":
			h.Interpreter = val
		case key == "flags:":
			h.Flags = val
		case key == "offset":
			if h.Offset, err = strconv.Atoi(val); err != nil {
				return Handler{}, fmt.Errorf("binfmt_misc entry %s: offset %q: %w", path, val, err)
			}
		case key == "magic":
			if h.Magic, err = hex.DecodeString(val); err != nil {
				return Handler{}, fmt.Errorf("binfmt_misc entry %s: magic: %w", path, err)
			}
		case key == "mask":
			if h.Mask, err = hex.DecodeString(val); err != nil {
				return Handler{}, fmt.Errorf("binfmt_misc entry %s: mask: %w", path, err)
			}
		case key == "extension":
			// matches by file name: no ELF header of ours.
		default:
			return Handler{}, fmt.Errorf("binfmt_misc entry %s: line %d %q is not of an entry", path, i+1, line)
		}
	}
	if h.Mask != nil && len(h.Mask) != len(h.Magic) {
		return Handler{}, fmt.Errorf("binfmt_misc entry %s: mask of %d bytes for a magic of %d", path, len(h.Mask), len(h.Magic))
	}
	for _, a := range archs {
		if h.runs(a) {
			h.Arch = a.name
			break
		}
	}
	return h, nil
}

// Support is how the host runs a platform's binaries.
type Support struct {
	// Native is true when the CPU runs them without an emulator.
	Native bool
	// Handler is the enabled binfmt_misc entry that runs them, when not Native.
	Handler *Handler
}

// OK reports whether the platform's binaries run here.
func (s Support) OK() bool { return s.Native || s.Handler != nil }

// ErrUnknownPlatform is a platform this package has no ELF identity for.
var ErrUnknownPlatform = errors.New("unknown platform")

// Supports says how this host runs binaries of p: natively, through an enabled handler of
// binfmt_misc that matches p's ELF header (the first in name order), or not at all (a zero
// Support and a nil error). Reading binfmt_misc fails (ErrNotMounted, ...) only for a
// platform that needs it.
func Supports(p specs.Platform) (Support, error) {
	a, ok := lookup(p)
	if !ok {
		return Support{}, fmt.Errorf("%w %s: strata knows the ELF binaries of linux/{amd64,386,arm64,arm,ppc64le,s390x,riscv64,mips64le,loong64}", ErrUnknownPlatform, format(p))
	}
	if native(runtime.GOARCH, a.name) {
		return Support{Native: true}, nil
	}
	on, err := enabled()
	if err != nil {
		return Support{}, err
	}
	if !on {
		return Support{}, nil
	}
	hs, err := Handlers()
	if err != nil {
		return Support{}, err
	}
	for _, h := range hs {
		if h.Enabled && h.runs(a) {
			return Support{Handler: &h}, nil
		}
	}
	return Support{}, nil
}

// lookup finds p's architecture; the Go and uname spellings of amd64 and arm64 are taken too.
func lookup(p specs.Platform) (arch, bool) {
	if p.OS != "linux" {
		return arch{}, false
	}
	name := p.Architecture
	switch name {
	case "x86_64", "x86-64":
		name = "amd64"
	case "aarch64":
		name = "arm64"
	case "i386":
		name = "386"
	}
	for _, a := range archs {
		if a.name == name {
			return a, true
		}
	}
	return arch{}, false
}

// native reports whether a host of GOARCH host runs target's binaries itself: its own, 386
// on amd64 (the kernels Debian and others ship run 32-bit x86), arm on an arm64 CPU whose
// kernel accepts 32-bit tasks.
func native(host, target string) bool {
	switch {
	case host == target:
		return true
	case host == "amd64" && target == "386":
		return true
	case host == "arm64" && target == "arm":
		return aarch32()
	}
	return false
}

func format(p specs.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Describe is one line naming how a platform runs here, for doctor: "native", or the
// handler's name and interpreter.
func (s Support) Describe() string {
	switch {
	case s.Native:
		return "native"
	case s.Handler != nil:
		return fmt.Sprintf("emulated by %s (%s)", s.Handler.Name, s.Handler.Interpreter)
	}
	return "no emulator"
}
