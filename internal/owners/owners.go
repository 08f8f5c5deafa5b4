// Package owners is how strata gives files in image trees (snapshots, COPY outputs, cache
// mounts) the owners the image says they have, and reads those owners back when it writes
// a layer: one value every place that sets or reads an owner goes through, as umoci's
// fseval. Host is the policy of a build with privileges over the ids it needs (root, or
// root in a user namespace with a mapping): owners are on disk. Recorded is the policy of
// a user who can own files only as themselves: files belong to the caller and the image's
// owner is recorded in an xattr (containers' user.containers.override_stat, which
// fuse-overlayfs also presents), so the layer written from the tree still carries it.
package owners

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Policy sets and reads the image owners of files.
type Policy interface {
	// Lchown gives the file at p (a symlink itself, not its target) the image owner uid:gid.
	Lchown(p string, uid, gid int) error
	// Owner is the image owner of the file at p, whose lstat is st.
	Owner(p string, st *unix.Stat_t) (uid, gid int, err error)
	// OnDisk reports whether trees hold the image's owners as their own, so a tree
	// written for a layer equals one extracted from it (and can become its snapshot).
	OnDisk() bool
	// RecordsDevices reports whether device nodes the kernel refuses to make are kept as
	// records (Mknod) and read back as nodes (Device): in a user namespace. Elsewhere a
	// record is an ordinary file's xattr, and a refused node an error.
	RecordsDevices() bool
}

// Host is the policy of a build allowed to chown to any id it meets.
var Host Policy = host{}

type host struct{}

func (host) Lchown(p string, uid, gid int) error {
	if err := unix.Lchown(p, uid, gid); err != nil {
		return &os.PathError{Op: "lchown", Path: p, Err: err}
	}
	return nil
}

func (host) Owner(_ string, st *unix.Stat_t) (int, int, error) {
	return int(st.Uid), int(st.Gid), nil
}

func (host) OnDisk() bool { return true }

func (host) RecordsDevices() bool { return false }

// Mapped is the policy of root of a user namespace mapping the caller's subordinate IDs: it
// chowns to any ID the image uses, as Host, but the kernel refuses it device nodes, which
// are recorded instead.
var Mapped Policy = mapped{}

type mapped struct{ host }

func (mapped) RecordsDevices() bool { return true }

// OverrideXattr records a file's image owner where it cannot be set: containers'
// "uid:gid:mode" (mode octal, with the file type bits), as fuse-overlayfs reads it.
const OverrideXattr = "user.containers.override_stat"

// Recorded is the policy of a build that can only own files as the calling user.
var Recorded Policy = recorded{}

type recorded struct{}

// Lchown records uid:gid with the file's current mode, or a device record's mode and
// type. Symlinks cannot carry user.* xattrs; their owner is 0:0 in the layer, as is every
// symlink's in practice.
func (recorded) Lchown(p string, uid, gid int) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	v := fmt.Sprintf("%d:%d:0%o", uid, gid, st.Mode)
	if mode, dev, ok := Device(Recorded, p, &st); ok {
		v = deviceRecord(uid, gid, mode, dev)
	}
	if err := unix.Lsetxattr(p, OverrideXattr, []byte(v), 0); err != nil {
		return &os.PathError{Op: "recording the owner of", Path: p, Err: err}
	}
	return nil
}

// Owner reads the recorded owner; a file without a record was made by the build itself
// (by root, as the image sees it).
func (recorded) Owner(p string, st *unix.Stat_t) (int, int, error) {
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return 0, 0, nil
	}
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(p, OverrideXattr, buf)
	if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, &os.PathError{Op: "reading the recorded owner of", Path: p, Err: err}
	}
	uid, gid, ok := parseOverride(string(buf[:n]))
	if !ok {
		return 0, 0, fmt.Errorf("%s: malformed %s %q", p, OverrideXattr, buf[:n])
	}
	return uid, gid, nil
}

func (recorded) OnDisk() bool { return false }

func (recorded) RecordsDevices() bool { return true }

func parseOverride(v string) (uid, gid int, ok bool) {
	parts := strings.Split(v, ":")
	if len(parts) < 2 {
		return 0, 0, false
	}
	u, err1 := strconv.Atoi(parts[0])
	g, err2 := strconv.Atoi(parts[1])
	return u, g, err1 == nil && err2 == nil && u >= 0 && g >= 0
}

// Mknod makes the device node p (mode holds S_IFCHR or S_IFBLK and the permissions), or,
// where the kernel refuses and pol records devices (in a user namespace), an empty file
// with the permissions that records it in OverrideXattr as containers/storage does
// ("0:0:MODE:char-MAJOR-MINOR"): the layer written from the tree has the node all the same.
func Mknod(pol Policy, p string, mode uint32, dev uint64) error {
	err := unix.Mknod(p, mode, int(dev))
	if err == nil || !errors.Is(err, unix.EPERM) || pol == nil || !pol.RecordsDevices() {
		if err != nil {
			return &os.PathError{Op: "mknod", Path: p, Err: err}
		}
		return nil
	}
	f, ferr := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if ferr != nil {
		return &os.PathError{Op: "mknod", Path: p, Err: err}
	}
	f.Close()
	if err := os.Chmod(p, os.FileMode(mode&0o777)|modeBits(mode)); err != nil {
		return err
	}
	if err := unix.Lsetxattr(p, OverrideXattr, []byte(deviceRecord(0, 0, mode, dev)), 0); err != nil {
		return &os.PathError{Op: "recording the device node", Path: p, Err: err}
	}
	return nil
}

// Device reads the record Mknod leaves on an empty regular file (st is its lstat) where
// pol records devices: the node's mode (the recorded type, the file's permissions) and
// number.
func Device(pol Policy, p string, st *unix.Stat_t) (mode uint32, dev uint64, ok bool) {
	if pol == nil || !pol.RecordsDevices() || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != 0 {
		return 0, 0, false
	}
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(p, OverrideXattr, buf)
	if err != nil {
		return 0, 0, false
	}
	parts := strings.Split(string(buf[:n]), ":")
	if len(parts) != 4 {
		return 0, 0, false
	}
	if _, err := strconv.ParseUint(parts[2], 8, 32); err != nil {
		return 0, 0, false
	}
	kind := strings.Split(parts[3], "-")
	if len(kind) != 3 {
		return 0, 0, false
	}
	major, err1 := strconv.ParseUint(kind[1], 10, 32)
	minor, err2 := strconv.ParseUint(kind[2], 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	switch kind[0] {
	case "char":
		mode = unix.S_IFCHR
	case "block":
		mode = unix.S_IFBLK
	default:
		return 0, 0, false
	}
	// The file's own permissions: a chmod after Mknod changed them, not the record.
	return mode | uint32(st.Mode)&0o7777, unix.Mkdev(uint32(major), uint32(minor)), true
}

func deviceRecord(uid, gid int, mode uint32, dev uint64) string {
	kind := "char"
	if mode&unix.S_IFMT == unix.S_IFBLK {
		kind = "block"
	}
	return fmt.Sprintf("%d:%d:0%o:%s-%d-%d", uid, gid, mode&0o7777, kind, unix.Major(dev), unix.Minor(dev))
}

// modeBits turns the setuid, setgid and sticky bits of a raw mode into os.FileMode's.
func modeBits(mode uint32) os.FileMode {
	var m os.FileMode
	if mode&unix.S_ISUID != 0 {
		m |= os.ModeSetuid
	}
	if mode&unix.S_ISGID != 0 {
		m |= os.ModeSetgid
	}
	if mode&unix.S_ISVTX != 0 {
		m |= os.ModeSticky
	}
	return m
}
