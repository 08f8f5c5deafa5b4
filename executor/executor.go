package executor

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
)

// ErrNeedsLinux is returned by Run on platforms without namespaces and overlayfs.
var ErrNeedsLinux = errors.New("running a build step needs Linux (namespaces and overlayfs)")

// NetworkMode is the network a step sees, as docker build's --network.
type NetworkMode string

// The network modes. The zero value (NetworkDefault) is a network namespace of the step's own
// with outbound connectivity through slirp4netns, as docker build gives a step its own
// namespace; NetworkNone has loopback only; NetworkHost shares the host's namespace.
const (
	NetworkDefault NetworkMode = ""
	NetworkHost    NetworkMode = "host"
	NetworkNone    NetworkMode = "none"
)

// MountType says what a Mount puts at its target.
type MountType string

// The mount types. RUN --mount types map onto these: type=cache and type=bind,from=... are
// binds of a directory the builder prepared, type=ssh a read-only bind of a socket,
// type=secret a file given by its content, type=tmpfs a tmpfs.
const (
	MountBind  MountType = "bind"
	MountTmpfs MountType = "tmpfs"
	// MountFile is a read-only file holding Data (a secret), owned by UID:GID with Mode. In
	// the sandbox it lives in a tmpfs of the step's own mount namespace, so its content
	// never touches a disk; under chroot isolation (no mounts) it is a file in the step's
	// copy, removed with the step.
	MountFile MountType = "file"
)

// Mount is one extra mount in the sandbox, made after the standard ones, in order. Every one
// is nosuid and nodev; a bind is not recursive, so mounts below its source are not seen.
type Mount struct {
	Type MountType
	// Source is the host path of a bind (a directory, a file or a socket).
	Source string
	// Target is the absolute path in the sandbox; missing parents are created for the run and
	// removed afterwards, like other mount points.
	Target   string
	ReadOnly bool
	// Size in bytes of a tmpfs; the kernel default (half the RAM) when zero.
	Size int64
	// Data, Mode (permission bits), UID and GID make a MountFile.
	Data     []byte `json:",omitempty"`
	Mode     uint32 `json:",omitempty"`
	UID, GID int    `json:",omitempty"`
}

// Spec is one step to run.
type Spec struct {
	// Lowers are the snapshot directories of the previous layers, top-most first, as in
	// overlayfs' lowerdir= option. Whiteouts in them are char devices 0:0 and opaque
	// directories carry trusted.overlay.opaque=y.
	Lowers []string
	// UpperDir receives the changes, in the same representation. Created when missing; must be
	// empty.
	UpperDir string
	// WorkDir is scratch space on the same filesystem as UpperDir (overlayfs requires it).
	// Run creates it and removes it when done.
	WorkDir string
	// Args is the command in exec form; see ShellArgs for the shell form.
	Args []string
	// Env is the environment as KEY=value. PATH and HOME get Docker's defaults when missing.
	Env []string
	// Cwd is the working directory, created (as root, mode 0755) when missing; "/" when empty.
	Cwd string
	// User is "", "name", "uid", "name:group" or "uid:gid", resolved from the image's own
	// /etc/passwd and /etc/group.
	User     string
	Hostname string // "strata" when empty
	Network  NetworkMode
	Mounts   []Mount
	// ExtraHosts are lines appended to the step's /etc/hosts (docker build --add-host), in
	// order. Omitted from JSON when empty, so cache keys of steps without them stay the same.
	ExtraHosts []HostIP `json:",omitempty"`
	// Ulimits are set on the step's init before the command starts (docker build --ulimit).
	Ulimits []Ulimit `json:",omitempty"`
	// ShmSize is the size in bytes of the tmpfs on /dev/shm; 64 MiB when zero. Under chroot
	// isolation /dev/shm is a directory of the copy: the size is ignored, with a warning.
	ShmSize int64 `json:",omitempty"`
	// Stdout and Stderr receive the command's output as it comes; discarded when nil.
	Stdout io.Writer
	Stderr io.Writer
}

// Result is how a step ended. A non-zero exit is a result, not an error.
type Result struct {
	// ExitCode is the command's exit status, or 128 plus the signal that killed it.
	ExitCode int
	// Signal is the signal that killed the command, or zero.
	Signal syscall.Signal
	// UpperDir is Spec.UpperDir, holding exactly what the command changed.
	UpperDir string
	// CopyFallback names why the step ran on a copy of the lowers instead of an overlay;
	// empty when the overlay was used.
	CopyFallback string
}

// DefaultPidsLimit bounds the processes and threads of one step (a fork bomb stops there).
// Podman's default is 2048; parallel builds (make -j with many compilers, a JVM's threads)
// can use more, and nothing legitimate needs ten thousands.
const DefaultPidsLimit = 4096

// Isolation is how a step is kept from the host.
type Isolation string

const (
	// IsolationSandbox (the default) runs a step in namespaces of its own on an overlay.
	IsolationSandbox Isolation = ""
	// IsolationChroot runs a step chrooted into a copy of its base, sharing the network and
	// processes of the container strata runs in: for unprivileged containers, where
	// namespaces and mounts are refused (see chroot_linux.go).
	IsolationChroot Isolation = "chroot"
)

// Options configure an Executor.
type Options struct {
	// Isolation is IsolationSandbox or IsolationChroot.
	Isolation Isolation
	// Unavailable, when set, is why steps cannot run here at all (a user without root
	// where user namespaces are refused): CheckNetwork and Run return it.
	Unavailable error
	// Warnings receives a line when the executor falls back from overlayfs to copying.
	Warnings io.Writer
	// ForceCopy runs every step on a copy of the lowers, as when overlayfs is unavailable.
	ForceCopy bool
	// ResolvConf is the host file copied into the sandbox as /etc/resolv.conf;
	// /etc/resolv.conf when empty. A missing file gives an empty one.
	ResolvConf string
	// NetworkHelper is the slirp4netns program for the default network, looked up in PATH;
	// "slirp4netns" when empty.
	NetworkHelper string
	// PidsLimit bounds the processes and threads of a step: DefaultPidsLimit when zero, no
	// limit when negative. It needs a cgroup, which needs root; without one, the executor
	// warns once through Warnings and runs steps unbounded.
	PidsLimit int64
}

// Executor runs steps. It is safe for concurrent use.
type Executor struct {
	opts Options

	mu sync.Mutex
	// noOverlay is why overlayfs failed once; later steps go straight to the copy.
	noOverlay string

	// chrootWarning says once that chroot isolation runs where the sandbox could.
	chrootWarning sync.Once
	// shmWarning says once that chroot isolation ignores Spec.ShmSize.
	shmWarning sync.Once

	// tunErr is why the default network cannot work here, checked once.
	tunOnce sync.Once
	tunErr  error

	cgroupsOnce sync.Once
	// cgroups is where steps' cgroups go, nil when they cannot be used, and noCgroupsWhy why.
	cgroups      *cgroups
	noCgroupsWhy string
	// onCgroup, for tests, learns each step's cgroup directory.
	onCgroup func(dir string)
}

// New returns an Executor.
func New(opts Options) *Executor {
	if opts.ResolvConf == "" {
		opts.ResolvConf = "/etc/resolv.conf"
	}
	if opts.PidsLimit == 0 {
		opts.PidsLimit = DefaultPidsLimit
	}
	return &Executor{opts: opts}
}

// ShellArgs turns a shell-form command into argv with the stage's SHELL, Docker's
// ["/bin/sh", "-c"] when shell is empty.
func ShellArgs(shell []string, command string) []string {
	if len(shell) == 0 {
		shell = []string{"/bin/sh", "-c"}
	}
	return append(append([]string(nil), shell...), command)
}

// SetupError is a failure to build the sandbox, before the command ran; it is reported by
// the sandbox's init process with the operation and path it was doing.
type SetupError struct {
	Op    string
	Path  string
	Errno syscall.Errno // zero when the cause is not a system call
	Msg   string        // the cause when Errno is zero
}

func (e *SetupError) Error() string {
	cause := e.Msg
	if e.Errno != 0 {
		cause = e.Errno.Error()
	}
	if e.Path == "" {
		return fmt.Sprintf("sandbox setup: %s: %s", e.Op, cause)
	}
	return fmt.Sprintf("sandbox setup: %s %s: %s", e.Op, e.Path, cause)
}

// Unwrap exposes the errno so errors.Is(err, syscall.EPERM) works.
func (e *SetupError) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

func (s *Spec) validate() error {
	switch {
	case len(s.Args) == 0:
		return errors.New("running step: empty command")
	case s.UpperDir == "" || s.WorkDir == "":
		return errors.New("running step: UpperDir and WorkDir are required")
	case s.Network != NetworkDefault && s.Network != NetworkHost && s.Network != NetworkNone:
		return fmt.Errorf("running step: unknown network mode %q", s.Network)
	}
	for _, h := range s.ExtraHosts {
		if err := h.check(); err != nil {
			return fmt.Errorf("running step: %w", err)
		}
	}
	for _, u := range s.Ulimits {
		if _, ok := ulimitNames[u.Name]; !ok {
			return fmt.Errorf("running step: unknown ulimit %q", u.Name)
		}
	}
	if s.ShmSize < 0 {
		return fmt.Errorf("running step: negative shm size %d", s.ShmSize)
	}
	for _, m := range s.Mounts {
		if m.Type != MountBind && m.Type != MountTmpfs && m.Type != MountFile {
			return fmt.Errorf("running step: unknown mount type %q for %s", m.Type, m.Target)
		}
		if len(m.Target) == 0 || m.Target[0] != '/' {
			return fmt.Errorf("running step: mount target %q is not absolute", m.Target)
		}
	}
	return nil
}
