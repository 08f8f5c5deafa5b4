package executor

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// childArg0 is the argv[0] that makes the re-executed binary the sandbox init.
const childArg0 = "strata-sandbox-init"

// The descriptors the init inherits: its config in, its report out, and on the default
// network one byte once the network is up.
const (
	configFD   = 3
	reportFD   = 4
	netReadyFD = 5
)

// childConfig is everything the init needs, sent as JSON over configFD.
type childConfig struct {
	// Overlay mode: Lowers (top-most first), Upper, OverlayWork, mounted at Merged; Binds is
	// where lowers get short names when the option string would not fit in a page.
	Lowers      []string
	Upper       string
	OverlayWork string
	Merged      string
	Binds       string
	// UserXattr mounts the overlay with userxattr, as a user namespace requires: opaque
	// markers are user.overlay.*, the form trees written there carry.
	UserXattr bool
	// Copy mode: Rootfs is a plain directory to run on; Chroot runs there without
	// namespaces or mounts (chroot isolation), the system files already in place.
	Rootfs string
	Chroot bool

	Args     []string
	Env      []string
	Cwd      string
	User     string
	Hostname string
	// PrivateNetwork: the init is in a network namespace of its own and brings lo up.
	PrivateNetwork bool
	// WaitNetwork: the command starts only after a byte arrives on netReadyFD.
	WaitNetwork bool
	Mounts      []Mount
	// Staging is an empty directory where the init mounts a tmpfs for the MountFile
	// contents, in its own mount namespace, before binding each file to its target.
	Staging string
	// Ulimits are set on the init before the command is forked; ShmSize is /dev/shm's
	// tmpfs size in bytes (the default when zero).
	Ulimits []Ulimit `json:",omitempty"`
	ShmSize int64    `json:",omitempty"`
	// EtcFiles are the generated /etc/hosts, /etc/resolv.conf and /etc/hostname.
	EtcFiles []etcFile
	// CgroupTasks is the tasks file of the step's cgroup v1, which the init's main thread
	// joins first thing (every process of the step is forked from that thread): moving
	// the current thread alone skips the lock that moving a whole process takes, an RCU
	// grace period (~10 ms) per step. Empty when the host placed the init (cgroup v2) or
	// there is no cgroup.
	CgroupTasks string `json:",omitempty"`
	// Seccomp is the compiled filter the command runs under (struct sock_filter entries).
	Seccomp []byte
}

type etcFile struct {
	Target string // path in the sandbox
	Source string // generated file on the host
}

// childReport is the init's answer, sent as JSON over reportFD.
type childReport struct {
	Err *SetupError `json:",omitempty"`
	// OverlayFailed says Err came from mounting the overlay itself.
	OverlayFailed bool `json:",omitempty"`
	ExitCode      int
	Signal        int `json:",omitempty"`
	// Stubs are mount points the init created in the rootfs, in creation order.
	Stubs []stub `json:",omitempty"`
	// Parents are the directories stubs were created under (and their ancestors), with their
	// metadata from before, so the host can undo every trace of the stubs.
	Parents []parentMeta `json:",omitempty"`
}

type stub struct {
	Path string // relative to the rootfs
	Dir  bool
}

type parentMeta struct {
	Path         string // relative to the rootfs; "" is the root
	Mode         uint32
	UID, GID     uint32
	Atime, Mtime unix.Timespec
}

// setupErr makes the structured error the init reports for a failed step of the setup.
func setupErr(op, path string, err error) *SetupError {
	var se *SetupError
	if errors.As(err, &se) {
		return se
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return &SetupError{Op: op, Path: path, Errno: errno}
	}
	return &SetupError{Op: op, Path: path, Msg: err.Error()}
}
