package executor

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The step's seccomp filter is Docker's default profile, with policy and mechanism apart as
// in runc: the policy (which calls, with which arguments) is data from
// github.com/moby/profiles/seccomp, evaluated for the capabilities a step keeps; it is
// compiled once per process into classic BPF (compileFilter, in seccomp_bpf_linux.go) and
// installed by the init on all its threads (installSeccomp). libseccomp would need cgo;
// github.com/elastic/go-seccomp-bpf's compiler (v1.6.0) leaves an argument in the
// accumulator when a rule's argument check fails and then compares it with the next
// syscall numbers, so the profile's socket-domain rules come out wrong (AF_NETLINK refused,
// and an unlisted domain allowed when it equals an allowed call's number); only its
// per-architecture syscall tables are used.

// seccompProgram is the compiled default profile, as the raw struct sock_filter array.
var seccompProgram = sync.OnceValues(func() ([]byte, error) {
	p, err := defaultProfile()
	if err != nil {
		return nil, err
	}
	insts, err := compileFilter(p)
	if err != nil {
		return nil, fmt.Errorf("compiling the default seccomp profile: %w", err)
	}
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return nil, fmt.Errorf("assembling the seccomp filter: %w", err)
	}
	return encodeFilter(raw), nil
})

// chrootSeccompProgram is the default profile with what would let a chroot step signal
// strata refused (strata and the steps share a PID namespace; see GuardUID):
//   - fcntl(F_SETSIG): a signal set on a descriptor (F_SETOWN) is checked against the
//     setter's effective uid only, so a root step could have SIGKILL sent to strata through
//     a pipe; the default, SIGIO, is one Go ignores;
//   - taking GuardUID as a uid, which the step's CAP_SETUID would allow, and which would
//     make strata's its own.
//
// The kernel reads these arguments as 32-bit values: only their low halves are compared,
// so high bits set in a 64-bit register get nothing past.
var chrootSeccompProgram = sync.OnceValues(func() ([]byte, error) {
	p, err := defaultProfile()
	if err != nil {
		return nil, err
	}
	eperm := uint(unix.EPERM)
	refuse := func(names []string, arg uint, value uint64) specs.LinuxSyscall {
		return specs.LinuxSyscall{
			Names: names, Action: specs.ActErrno, ErrnoRet: &eperm,
			Args: []specs.LinuxSeccompArg{{Index: arg, Value: 0xffffffff, ValueTwo: value, Op: specs.OpMaskedEqual}},
		}
	}
	rules := []specs.LinuxSyscall{refuse([]string{"fcntl", "fcntl64"}, 1, unix.F_SETSIG)}
	for _, c := range []struct {
		names []string
		args  uint
	}{{[]string{"setuid", "setuid32"}, 1}, {[]string{"setreuid", "setreuid32"}, 2}, {[]string{"setresuid", "setresuid32"}, 3}} {
		for i := range c.args {
			rules = append(rules, refuse(c.names, i, GuardUID))
		}
	}
	// First: the profile's own rules allow these calls unconditionally.
	p.Syscalls = append(rules, p.Syscalls...)
	insts, err := compileFilter(p)
	if err != nil {
		return nil, fmt.Errorf("compiling the chroot seccomp profile: %w", err)
	}
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return nil, fmt.Errorf("assembling the seccomp filter: %w", err)
	}
	return encodeFilter(raw), nil
})

// defaultProfile is Docker's profile evaluated for a process holding defaultCaps on this
// machine's architecture and kernel.
func defaultProfile() (*specs.LinuxSeccomp, error) {
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: capNames(defaultCaps)}}}
	p, err := seccomp.GetDefaultProfile(spec)
	if err != nil {
		return nil, fmt.Errorf("evaluating the default seccomp profile: %w", err)
	}
	return p, nil
}

// encodeFilter lays the program out as struct sock_filter entries, 8 bytes each.
func encodeFilter(raw []bpf.RawInstruction) []byte {
	out := make([]byte, 0, 8*len(raw))
	for _, in := range raw {
		out = binary.NativeEndian.AppendUint16(out, in.Op)
		out = append(out, in.Jt, in.Jf)
		out = binary.NativeEndian.AppendUint32(out, in.K)
	}
	return out
}

// installSeccomp loads the filter on every thread of the init (TSYNC), so the command forked
// from it and every thread left in the init run under it. no_new_privs must be set already.
func installSeccomp(filter []byte) error {
	if len(filter) == 0 || len(filter)%8 != 0 || len(filter)/8 > 0xffff {
		return &SetupError{Op: "installing seccomp filter", Msg: "malformed filter"}
	}
	prog := unix.SockFprog{Len: uint16(len(filter) / 8), Filter: (*unix.SockFilter)(unsafe.Pointer(&filter[0]))}
	// With TSYNC a positive return names a thread that could not be synced.
	r, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return setupErr("installing seccomp filter", "", errno)
	}
	if r != 0 {
		return &SetupError{Op: "installing seccomp filter", Msg: fmt.Sprintf("thread %d could not be synchronised", r)}
	}
	return nil
}

// capNames names the capabilities set in mask, as the profile's conditions spell them.
func capNames(mask uint64) []string {
	var out []string
	for c, name := range capabilityNames {
		if mask&(1<<uint(c)) != 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// capabilityNames covers the capabilities a step keeps and those the profile has rules for.
var capabilityNames = map[int]string{
	unix.CAP_CHOWN: "CAP_CHOWN", unix.CAP_DAC_OVERRIDE: "CAP_DAC_OVERRIDE", unix.CAP_FSETID: "CAP_FSETID",
	unix.CAP_FOWNER: "CAP_FOWNER", unix.CAP_MKNOD: "CAP_MKNOD", unix.CAP_NET_RAW: "CAP_NET_RAW",
	unix.CAP_SETGID: "CAP_SETGID", unix.CAP_SETUID: "CAP_SETUID", unix.CAP_SETFCAP: "CAP_SETFCAP",
	unix.CAP_SETPCAP: "CAP_SETPCAP", unix.CAP_NET_BIND_SERVICE: "CAP_NET_BIND_SERVICE",
	unix.CAP_SYS_CHROOT: "CAP_SYS_CHROOT", unix.CAP_KILL: "CAP_KILL", unix.CAP_AUDIT_WRITE: "CAP_AUDIT_WRITE",
	unix.CAP_SYS_ADMIN: "CAP_SYS_ADMIN", unix.CAP_SYS_PTRACE: "CAP_SYS_PTRACE", unix.CAP_SYS_BOOT: "CAP_SYS_BOOT",
	unix.CAP_SYS_MODULE: "CAP_SYS_MODULE", unix.CAP_SYS_RAWIO: "CAP_SYS_RAWIO", unix.CAP_SYS_PACCT: "CAP_SYS_PACCT",
	unix.CAP_SYS_NICE: "CAP_SYS_NICE", unix.CAP_SYS_RESOURCE: "CAP_SYS_RESOURCE", unix.CAP_SYS_TIME: "CAP_SYS_TIME",
	unix.CAP_SYS_TTY_CONFIG: "CAP_SYS_TTY_CONFIG", unix.CAP_SYSLOG: "CAP_SYSLOG", unix.CAP_BPF: "CAP_BPF",
	unix.CAP_PERFMON: "CAP_PERFMON", unix.CAP_NET_ADMIN: "CAP_NET_ADMIN",
}
