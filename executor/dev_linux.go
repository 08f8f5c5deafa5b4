package executor

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// device is a node of the minimal /dev, as runc's default devices.
type device struct {
	name         string
	major, minor uint32
}

func defaultDevices() []device {
	return []device{
		{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
		{"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
	}
}

// mountDev puts a tmpfs on /dev holding only harmless devices, its own devpts instance (so
// the step cannot reach the host's terminals), a /dev/shm and the usual links. The devices are
// binds of the host's nodes, and the tmpfs is nodev, so a node the step makes there (with
// CAP_MKNOD, which Docker grants too) cannot be opened.
func (s *sandbox) mountDev() error {
	dev, err := s.systemDir("/dev")
	if err != nil {
		return err
	}
	s.dev = dev
	if err := mountErr("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return err
	}
	for _, d := range defaultDevices() {
		if err := bindDevice(dev, d); err != nil {
			return err
		}
	}
	if err := mountDevSubdirs(dev, s.cfg.ShmSize); err != nil {
		return err
	}
	if err := devLinks(dev); err != nil {
		return err
	}
	// The binds are mounts of their own and keep working.
	return mountErr("", dev, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_STRICTATIME, "")
}

// bindDevice binds the host's node of d onto an empty file in dev, after checking the host's
// node is the device it is named for.
func bindDevice(dev string, d device) error {
	host := filepath.Join("/dev", d.name)
	var st unix.Stat_t
	if err := unix.Stat(host, &st); err != nil {
		return setupErr("stat", host, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(d.major, d.minor) {
		return &SetupError{Op: "binding device", Path: host, Msg: fmt.Sprintf("not the character device %d:%d", d.major, d.minor)}
	}
	p := filepath.Join(dev, d.name)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
	if err != nil {
		return setupErr("creating device mount point", p, err)
	}
	f.Close()
	return mountErr(host, p, "", unix.MS_BIND, "")
}

// mountDevSubdirs mounts /dev/pts and /dev/shm; shmSize is the latter's size in bytes, or
// docker's 64 MiB when zero.
func mountDevSubdirs(dev string, shmSize int64) error {
	pts, shm := filepath.Join(dev, "pts"), filepath.Join(dev, "shm")
	for _, d := range []string{pts, shm} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return setupErr("mkdir", d, err)
		}
	}
	if err := mountErr("devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return err
	}
	size := "65536k"
	if shmSize > 0 {
		size = strconv.FormatInt(shmSize, 10)
	}
	return mountErr("shm", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size="+size)
}

func devLinks(dev string) error {
	links := [][2]string{
		{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	}
	for _, l := range links {
		p := filepath.Join(dev, l[1])
		if err := os.Symlink(l[0], p); err != nil {
			return setupErr("symlink", p, err)
		}
	}
	return nil
}

// maskedPaths and readonlyPaths are Docker's defaults: kernel interfaces a build step has no
// business reading (addresses, keys, timers) or writing (sysctls, sysrq).
func maskedPaths() []string {
	return []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
}

func readonlyPaths() []string {
	return []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
}

func (s *sandbox) maskPaths() error {
	for _, p := range maskedPaths() {
		full, err := s.inSystem(p)
		if err != nil {
			return err
		}
		if err := s.mask(full); err != nil {
			return err
		}
	}
	for _, p := range readonlyPaths() {
		full, err := s.inSystem(p)
		if err != nil {
			return err
		}
		if _, err := os.Lstat(full); os.IsNotExist(err) {
			continue
		}
		if err := mountErr(full, full, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
		if err := mountErr("", full, "", flags, ""); err != nil {
			return err
		}
	}
	return nil
}

// inSystem maps a path under /proc or /sys to where that is mounted, so that nothing the image
// holds is followed to get there.
func (s *sandbox) inSystem(p string) (string, error) {
	if rest, ok := strings.CutPrefix(p, "/proc/"); ok {
		return filepath.Join(s.proc, rest), nil
	}
	if rest, ok := strings.CutPrefix(p, "/sys/"); ok {
		return filepath.Join(s.sys, rest), nil
	}
	return "", &SetupError{Op: "masking", Path: p, Msg: "not under /proc or /sys"}
}

// mask hides a file under /dev/null and a directory under an empty read-only tmpfs.
func (s *sandbox) mask(p string) error {
	fi, err := os.Lstat(p)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return setupErr("stat", p, err)
	}
	if fi.IsDir() {
		return mountErr("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0")
	}
	return mountErr(filepath.Join(s.dev, "null"), p, "", unix.MS_BIND, "")
}
