package executor

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// runFilter evaluates the compiled filter on one call in x/net/bpf's VM. The VM loads 32-bit
// words big-endian, so each word is stored big-endian at the offset where a little-endian
// kernel would read it: the filter then sees what the kernel would show it.
func runFilter(t *testing.T, vm *bpf.VM, archID uint32, nr uint32, args [6]uint64) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.BigEndian.PutUint32(data[dataNr:], nr)
	binary.BigEndian.PutUint32(data[dataArch:], archID)
	for i, a := range args {
		off := dataArgs + 8*i
		lo, hi := off, off+4
		if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
			lo, hi = hi, lo
		}
		binary.BigEndian.PutUint32(data[lo:], uint32(a))
		binary.BigEndian.PutUint32(data[hi:], uint32(a>>32))
	}
	r, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(r)
}

// reference is libseccomp's meaning of the profile, written plainly: the first rule naming
// the call whose conditions all hold decides; calls above the highest named get ENOSYS.
func reference(t *testing.T, p *specs.LinuxSeccomp, info *arch.Info, nr uint32, args [6]uint64) uint32 {
	t.Helper()
	def, _ := retAction(p.DefaultAction, p.DefaultErrnoRet)
	maxNr := 0
	for _, r := range p.Syscalls {
		for _, n := range r.Names {
			if num, ok := info.SyscallNames[n]; ok {
				maxNr = max(maxNr, num)
			}
		}
	}
	if int(nr) > maxNr {
		return retENOSYS
	}
	name := info.SyscallNumbers[int(nr)]
	for _, r := range p.Syscalls {
		named := false
		for _, n := range r.Names {
			named = named || n == name
		}
		if !named || name == "" {
			continue
		}
		ok := true
		for _, a := range r.Args {
			v := args[a.Index]
			switch a.Op {
			case specs.OpEqualTo:
				ok = ok && v == a.Value
			case specs.OpNotEqual:
				ok = ok && v != a.Value
			case specs.OpLessThan:
				ok = ok && v < a.Value
			case specs.OpLessEqual:
				ok = ok && v <= a.Value
			case specs.OpGreaterThan:
				ok = ok && v > a.Value
			case specs.OpGreaterEqual:
				ok = ok && v >= a.Value
			case specs.OpMaskedEqual:
				ok = ok && v&a.Value == a.ValueTwo
			}
		}
		if ok {
			ret, _ := retAction(r.Action, r.ErrnoRet)
			return ret
		}
	}
	return def
}

// TestSeccompCompilerMatchesProfile runs the compiled default profile on every call number of
// each architecture, with argument values at and around every value the profile compares
// with, and on random ones, against the plain reading of the profile.
func TestSeccompCompilerMatchesProfile(t *testing.T) {
	p, err := defaultProfile()
	if err != nil {
		t.Fatal(err)
	}
	// Extra rules exercise every operator at 64-bit boundaries, on calls the profile allows
	// outright (so the rules decide) and one it refuses.
	p.Syscalls = append([]specs.LinuxSyscall{
		{Names: []string{"getcwd"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(unix.EACCES)), Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpGreaterThan, Value: 1 << 32}}},
		{Names: []string{"getcwd"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(unix.E2BIG)), Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpLessEqual, Value: 7}, {Index: 0, Op: specs.OpNotEqual, Value: 0}}},
		{Names: []string{"dup"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(unix.EBADF)), Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpGreaterEqual, Value: 0xffffffff}}},
		{Names: []string{"dup"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(unix.EMFILE)), Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpLessThan, Value: 3}}},
		{Names: []string{"fsync"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(unix.EIO)), Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpMaskedEqual, Value: 0xf0000000f0, ValueTwo: 0x1000000010}}},
		{Names: []string{"kexec_load"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 5, Op: specs.OpEqualTo, Value: 1<<40 | 5}}},
	}, p.Syscalls...)
	insts, err := compileFilter(p)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatal(err)
	}
	arches, err := profileArches(p)
	if err != nil {
		t.Fatal(err)
	}
	values := []uint64{0, 1, 2, 3, 5, 6, 7, 8, 0xffffffff, 1 << 32, 1<<32 + 1, 1<<40 | 5, ^uint64(0), 0x10, 0x1000000010, 0x7E020000}
	for _, r := range p.Syscalls {
		for _, a := range r.Args {
			values = append(values, a.Value-1, a.Value, a.Value+1, a.Value|a.ValueTwo, a.ValueTwo)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	checked := 0
	for _, info := range arches {
		for nr := uint32(0); nr < 600; nr++ {
			for i := 0; i < 40; i++ {
				var args [6]uint64
				for j := range args {
					if rng.IntN(3) == 0 {
						args[j] = rng.Uint64()
					} else {
						args[j] = values[rng.IntN(len(values))]
					}
				}
				want := reference(t, p, info, nr, args)
				if got := runFilter(t, vm, uint32(info.ID), nr, args); got != want {
					t.Fatalf("%s call %d (%s) args %x: filter returns %#x, profile says %#x", info.Name, nr, info.SyscallNumbers[int(nr)], args, got, want)
				}
				checked++
			}
		}
	}
	// An architecture the profile does not list gets the default action.
	if got := runFilter(t, vm, uint32(arch.ARM.ID)^0xff, 0, [6]uint64{}); got != unix.SECCOMP_RET_ERRNO|uint32(unix.EPERM) {
		t.Errorf("unknown architecture: %#x, want EPERM", got)
	}
	t.Logf("%d calls checked on %d architectures, %d instructions", checked, len(arches), len(insts))
}

func ptr[T any](v T) *T { return &v }
