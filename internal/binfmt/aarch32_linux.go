package binfmt

import (
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// aarch32 reports whether this arm64 kernel runs 32-bit arm tasks: it refuses the PER_LINUX32
// personality with EINVAL when the CPU has no AArch32 at EL0 (many recent server CPUs).
var aarch32 = sync.OnceValue(func() bool {
	ok := make(chan bool)
	go func() {
		// The personality is the thread's: this thread is never unlocked, so it ends with the
		// goroutine and no other goroutine runs with PER_LINUX32.
		runtime.LockOSThread()
		const query, perLinux32 = 0xffffffff, 0x0008 // <linux/personality.h>
		old, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, query, 0, 0)
		if errno != 0 {
			ok <- false
			return
		}
		_, _, errno = unix.RawSyscall(unix.SYS_PERSONALITY, perLinux32, 0, 0)
		unix.RawSyscall(unix.SYS_PERSONALITY, old, 0, 0)
		ok <- errno == 0
	}()
	return <-ok
})
