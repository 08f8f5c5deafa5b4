package executor

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// defaultCaps is Docker's default capability set; every other capability is dropped. Notably
// absent: CAP_SYS_ADMIN (no mounts), CAP_SYS_PTRACE, CAP_SYS_MODULE, CAP_NET_ADMIN.
const defaultCaps uint64 = 1<<unix.CAP_CHOWN | 1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_FSETID |
	1<<unix.CAP_FOWNER | 1<<unix.CAP_MKNOD | 1<<unix.CAP_NET_RAW | 1<<unix.CAP_SETGID |
	1<<unix.CAP_SETUID | 1<<unix.CAP_SETFCAP | 1<<unix.CAP_SETPCAP |
	1<<unix.CAP_NET_BIND_SERVICE | 1<<unix.CAP_SYS_CHROOT | 1<<unix.CAP_KILL |
	1<<unix.CAP_AUDIT_WRITE

// dropPrivileges limits the init, and so the command forked from it, to Docker's defaults:
// no_new_privs (setuid binaries and file capabilities cannot raise privileges), the bounding
// set cut down to defaultCaps, no ambient or inheritable capabilities.
//
// These are per-thread attributes. The ones that only act at exec (no_new_privs, the bounding
// and ambient sets) are set on the calling thread, which forks the command. The effective and
// permitted sets, what a thread can do now, drop on every thread of the init where the
// runtime allows it (no cgo), so the init holds nothing the command lacks; with cgo (as in
// race-enabled test binaries) the other threads keep theirs, out of the command's reach
// because the init is not dumpable. One call on all threads stops the world; a call per
// capability would cost a millisecond a step.
//
// Under chroot isolation (chroot true) the command also loses CAP_SYS_CHROOT, the way out of
// a chroot, and CAP_KILL, with which it could signal strata (guardFromSteps), and keeps
// only what the container gave the init.
func dropPrivileges(chroot bool) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return setupErr("setting no_new_privs", "", err)
	}
	keep := defaultCaps
	if chroot {
		keep &^= 1<<unix.CAP_SYS_CHROOT | 1<<unix.CAP_KILL
		have, err := permittedCaps()
		if err != nil {
			return setupErr("capget", "", err)
		}
		keep &= have
	}
	last := lastCap()
	for c := 0; c <= last; c++ {
		if keep&(1<<uint(c)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return setupErr("dropping capability "+strconv.Itoa(c), "", err)
		}
	}
	// Ambient capabilities exist since Linux 4.3; EINVAL means there are none to clear.
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return setupErr("clearing ambient capabilities", "", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(keep), Permitted: uint32(keep)},
		{Effective: uint32(keep >> 32), Permitted: uint32(keep >> 32)},
	}
	err := onAllThreads(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	runtime.KeepAlive(&hdr)
	runtime.KeepAlive(&data)
	if err != nil {
		return setupErr("capset", "", err)
	}
	return nil
}

// permittedCaps is the calling thread's permitted set.
func permittedCaps() (uint64, error) {
	data, err := capget()
	return uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32, err
}

// effectiveCaps is the calling thread's effective set.
func effectiveCaps() (uint64, error) {
	data, err := capget()
	return uint64(data[0].Effective) | uint64(data[1].Effective)<<32, err
}

func capget() ([2]unix.CapUserData, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	err := unix.Capget(&hdr, &data[0])
	return data, err
}

// onAllThreads makes a system call on every thread of the process, or, where the runtime
// cannot (a cgo binary), on the calling one only.
func onAllThreads(trap, a1, a2, a3 uintptr) error {
	_, _, errno := syscall.AllThreadsSyscall(trap, a1, a2, a3)
	if errno == syscall.ENOTSUP {
		_, _, errno = unix.RawSyscall(trap, a1, a2, a3)
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// lastCap is the highest capability the kernel knows, 63 when it cannot say.
func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 63
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 63
	}
	return n
}
