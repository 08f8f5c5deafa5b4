// Package executor runs one RUN step of a build in a sandbox on an overlay of the step's
// previous layers, and hands back the overlay upper directory: exactly what the command changed.
//
// The sandbox is the strata binary itself, re-executed through a hidden entry point in new
// mount, PID, UTS, IPC and network namespaces (the host's network only for NetworkHost; on
// the default network slirp4netns connects the namespace to the host's network in user
// mode) and, once it is in a cgroup of its own with a pids limit (on cgroup v1 its main
// thread, which forks the command, joins it itself: cheaper than moving a process), a cgroup
// namespace. A program using this package must call
//
//	if executor.IsChild() { executor.ChildMain() }
//
// first thing in main, and a test binary in TestMain. Inside, the child makes itself
// non-dumpable (the command cannot ptrace it or open its /proc/1 files), marks every inherited
// descriptor close-on-exec, makes every mount private, mounts the overlay (or, where overlayfs
// is unavailable, a copy of the lowers) nodev, a fresh /proc with Docker's masked and
// read-only paths, a minimal nodev /dev holding binds of the host's harmless devices, a
// read-only /sys and generated /etc/hosts, /etc/resolv.conf and /etc/hostname, pivots into
// the new root and detaches the old one, keeps Docker's default capabilities only with
// no_new_privs set, installs Docker's default seccomp profile on all its threads, sets the
// umask to 0022, and runs the command as PID 1's child. PID 1 reaps orphans, forwards
// signals and kills whatever the command leaves behind. The command keeps CAP_MKNOD, as in
// Docker: a node it makes goes into the layer but cannot be opened in the sandbox. An image
// whose /proc, /sys or /dev is a symlink is refused.
//
// The command's output reaches Spec.Stdout and Spec.Stderr through pipes, also when they are
// files. After the run the host cleans the upper directory without following any symlink the
// command left there.
//
// Mount points the image lacks (say /etc/resolv.conf in a FROM scratch image) are created for
// the run and removed from the upper directory afterwards, so they never reach a layer.
//
// Callers own Spec.UpperDir: Run fills it, and on an error or a non-zero exit the caller
// removes it. Run creates and always removes Spec.WorkDir. Everything mounted lives in the
// child's mount namespace and vanishes with it, also when the builder is killed (the child
// gets SIGKILL as its parent-death signal).
//
// The parent-death signal is tied to the OS thread that starts the init, so Run must not be
// called from a goroutine that locked its thread and may exit.
//
// When overlayfs cannot be mounted (EPERM, EINVAL, ENODEV, EOPNOTSUPP: say the upper dir is
// itself on overlayfs, inside a container), the Executor warns once through
// Options.Warnings and from then on copies the lowers into a scratch rootfs, runs there, and
// diffs the result into UpperDir in the same representation; Result.CopyFallback says why.
//
// Linux only; elsewhere Run returns ErrNeedsLinux.
package executor
