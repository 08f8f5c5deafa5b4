package executor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountRootfs mounts the overlay of the lowers (or binds the copy onto itself, as pivot_root
// needs a mount point) and sets s.root.
func (s *sandbox) mountRootfs() error {
	if s.cfg.Rootfs != "" {
		s.root = s.cfg.Rootfs
		if err := unix.Mount(s.root, s.root, "", unix.MS_BIND, ""); err != nil {
			return setupErr("bind-mounting rootfs", s.root, err)
		}
		// nodev: a node the step makes is kept for the layer but cannot be opened.
		return mountErr("", s.root, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_NODEV, "")
	}
	s.root = s.cfg.Merged
	if err := os.MkdirAll(s.root, 0o755); err != nil {
		return setupErr("creating overlay mount point", s.root, err)
	}
	dir, opts, err := s.overlayOptions()
	if err != nil {
		return err
	}
	// Paths in the options are relative to dir: that keeps them short.
	if err := unix.Chdir(dir); err != nil {
		return setupErr("chdir", dir, err)
	}
	// nodev: a node the step makes (mknod c 1 11, the host's /dev/kmsg) goes into the layer,
	// as in Docker, but cannot be opened; the devices of /dev are binds of the host's.
	err = unix.Mount("overlay", s.root, "overlay", unix.MS_NODEV, opts)
	if err == unix.EINVAL && strings.HasSuffix(opts, volatileOption) {
		// Before Linux 5.10 the option is unknown.
		err = unix.Mount("overlay", s.root, "overlay", unix.MS_NODEV, strings.TrimSuffix(opts, volatileOption))
	}
	if err != nil {
		s.overlayFailed = true
		return setupErr("mounting overlay", s.root, err)
	}
	return nil
}

// volatileOption, last in the options, spares the step the sync of the upper filesystem
// that unmounting an overlay otherwise does when the namespace goes away: the whole
// filesystem the upper dir is on (the store's, shared with everything else on it), ~10 ms
// or far more per step on a busy disk. The upper and work dirs are the step's own and thrown
// away after a crash; what must survive one, the layer's blob and a snapshot adopted from
// the upper dir, the store syncs when it writes them.
const volatileOption = ",volatile"

// overlayOptions builds the mount options with paths relative to a directory the init
// chdirs to. The whole string must fit in one page; when many lowers make it longer, each
// lower is bind-mounted under a short numeric name first (in this mount namespace only).
func (s *sandbox) overlayOptions() (dir, opts string, err error) {
	c := s.cfg
	dir = commonDir(append([]string{c.Upper, c.OverlayWork}, c.Lowers...))
	opts = formatOverlayOptions(dir, c.Lowers, c.Upper, c.OverlayWork)
	if c.UserXattr {
		opts = userXattrOptions(opts)
	}
	opts += volatileOption
	limit := os.Getpagesize() - 1
	if len(opts) <= limit {
		return dir, opts, nil
	}
	short := make([]string, len(c.Lowers))
	for i, l := range c.Lowers {
		short[i] = filepath.Join(c.Binds, strconv.Itoa(i))
		if err := os.MkdirAll(short[i], 0o755); err != nil {
			return "", "", setupErr("creating lower bind", short[i], err)
		}
		if err := unix.Mount(l, short[i], "", unix.MS_BIND, ""); err != nil {
			return "", "", setupErr("binding lower", l, err)
		}
	}
	opts = formatOverlayOptions(c.Binds, short, c.Upper, c.OverlayWork)
	if c.UserXattr {
		opts = userXattrOptions(opts)
	}
	opts += volatileOption
	if len(opts) > limit {
		return "", "", setupErr("mounting overlay", s.root, fmt.Errorf("%d lowers do not fit in the mount options", len(c.Lowers)))
	}
	return c.Binds, opts, nil
}

func formatOverlayOptions(dir string, lowers []string, upper, work string) string {
	rel := make([]string, len(lowers))
	for i, l := range lowers {
		rel[i] = overlayEscape(relTo(dir, l))
	}
	// index, redirect_dir and metacopy off: the upper dir must hold plain files and the two
	// standard whiteout forms only, which is what the layer writer converts.
	return "lowerdir=" + strings.Join(rel, ":") +
		",upperdir=" + overlayEscape(relTo(dir, upper)) +
		",workdir=" + overlayEscape(relTo(dir, work)) +
		",index=off,redirect_dir=off,metacopy=off"
}

// userXattrOptions turns the options into those of a mount in a user namespace:
// redirect_dir=off means "follow" where the module follows redirects always, which
// userxattr refuses; nofollow creates and follows none.
func userXattrOptions(opts string) string {
	return strings.Replace(opts, ",redirect_dir=off,", ",redirect_dir=nofollow,", 1) + ",userxattr"
}

// overlayEscape escapes the separators overlayfs splits its options on.
func overlayEscape(p string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`, `,`, `\,`).Replace(p)
}

func relTo(dir, p string) string {
	if r, err := filepath.Rel(dir, p); err == nil {
		return r
	}
	return p
}

// commonDir is the deepest directory containing every path.
func commonDir(paths []string) string {
	common := filepath.Clean(paths[0])
	for _, p := range paths[1:] {
		p = filepath.Clean(p)
		for common != "/" && p != common && !strings.HasPrefix(p, common+"/") {
			common = filepath.Dir(common)
		}
	}
	return common
}

// mountSystem mounts /proc, /dev, /sys, the /etc files and the step's own mounts.
func (s *sandbox) mountSystem() error {
	steps := []func() error{s.mountProc, s.mountDev, s.mountSys, s.maskPaths, s.mountEtc, s.mountExtra}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func (s *sandbox) mountProc() error {
	t, err := s.systemDir("/proc")
	if err != nil {
		return err
	}
	s.proc = t
	// A fresh proc for the new PID namespace: the step sees its own processes only.
	return mountErr("proc", t, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

func (s *sandbox) mountSys() error {
	t, err := s.systemDir("/sys")
	if err != nil {
		return err
	}
	s.sys = t
	return mountErr("sysfs", t, "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

// systemDir returns where /proc, /sys or /dev is mounted, creating it when missing. As runc,
// it refuses a symlink there: the image has no business moving them, and every path below
// (the masked ones, /dev/null) is then simply under the directory returned.
func (s *sandbox) systemDir(p string) (string, error) {
	fi, err := os.Lstat(filepath.Join(s.root, p))
	if err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return "", &SetupError{Op: "mounting", Path: p, Msg: "the image has a symlink there; it must be a directory"}
	}
	return s.target(p, true)
}

func (s *sandbox) mountEtc() error {
	for _, f := range s.cfg.EtcFiles {
		t, err := s.target(f.Target, false)
		if err != nil {
			return err
		}
		if err := mountErr(f.Source, t, "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	return nil
}

func (s *sandbox) mountExtra() error {
	for _, m := range s.cfg.Mounts {
		if err := s.mountOne(m); err != nil {
			return err
		}
	}
	return nil
}

func (s *sandbox) mountOne(m Mount) error {
	if m.Type == MountFile {
		return s.mountFile(m)
	}
	if m.Type == MountTmpfs {
		t, err := s.target(m.Target, true)
		if err != nil {
			return err
		}
		data := "mode=755"
		if m.Size > 0 {
			data += ",size=" + strconv.FormatInt(m.Size, 10)
		}
		return mountErr("tmpfs", t, "tmpfs", roFlag(m.ReadOnly)|unix.MS_NOSUID|unix.MS_NODEV, data)
	}
	fi, err := os.Stat(m.Source)
	if err != nil {
		return setupErr("bind source", m.Source, err)
	}
	t, err := s.target(m.Target, fi.IsDir())
	if err != nil {
		return err
	}
	// Not recursive: mounts below the source would escape the read-only and nodev flags,
	// which a remount sets on this mount alone.
	if err := mountErr(m.Source, t, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	flags := roFlag(m.ReadOnly) | unix.MS_BIND | unix.MS_REMOUNT | unix.MS_NOSUID | unix.MS_NODEV
	return mountErr("", t, "", flags, "")
}

// mountFile writes m.Data into a tmpfs of the init's own mount namespace, mounted on
// cfg.Staging the first time, and binds that file read-only on the target: the content
// is in memory only and goes with the namespace. The staging tmpfs is reachable only
// through the host's tree, which pivot_root detaches.
func (s *sandbox) mountFile(m Mount) error {
	if s.cfg.Staging == "" {
		return setupErr("file mount", m.Target, errors.New("no staging directory"))
	}
	if !s.staged {
		if err := mountErr("tmpfs", s.cfg.Staging, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=700"); err != nil {
			return err
		}
		s.staged = true
	}
	src := filepath.Join(s.cfg.Staging, strconv.Itoa(s.files))
	s.files++
	if err := os.WriteFile(src, m.Data, 0o600); err != nil {
		return setupErr("writing file mount", m.Target, err)
	}
	if !idMapped("/proc/self/uid_map", m.UID) || !idMapped("/proc/self/gid_map", m.GID) {
		return setupErr("file mount", m.Target, fmt.Errorf("uid=%d,gid=%d is not mapped in this user namespace: the user running strata has no subordinate IDs (run strata doctor)", m.UID, m.GID))
	}
	if err := os.Lchown(src, m.UID, m.GID); err != nil {
		return setupErr("chown of file mount", m.Target, err)
	}
	// After the chown, which would clear setuid bits (the mount is nosuid anyway).
	if err := os.Chmod(src, os.FileMode(m.Mode&0o777)); err != nil {
		return setupErr("chmod of file mount", m.Target, err)
	}
	t, err := s.target(m.Target, false)
	if err != nil {
		return err
	}
	if err := mountErr(src, t, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	return mountErr("", t, "", unix.MS_RDONLY|unix.MS_BIND|unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

func roFlag(ro bool) uintptr {
	if ro {
		return unix.MS_RDONLY
	}
	return 0
}

func mountErr(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		op := "mounting " + fstype
		if fstype == "" {
			op = "bind-mounting " + source
		}
		return setupErr(op, target, err)
	}
	return nil
}
