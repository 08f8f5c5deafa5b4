package owners

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPolicies: Host puts the owner on disk, Recorded keeps the file the caller's and the
// owner in the xattr; both read back what was set.
func TestPolicies(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for Host")
	}
	for _, tc := range []struct {
		name   string
		p      Policy
		onDisk bool
	}{{"host", Host, true}, {"recorded", Recorded, false}} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(f, nil, 0o640); err != nil {
				t.Fatal(err)
			}
			if err := tc.p.Lchown(f, 1234, 5678); err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			if err := unix.Lstat(f, &st); err != nil {
				t.Fatal(err)
			}
			if uid, gid, err := tc.p.Owner(f, &st); err != nil || uid != 1234 || gid != 5678 {
				t.Errorf("Owner = %d:%d, %v; want 1234:5678", uid, gid, err)
			}
			if onDisk := st.Uid == 1234; onDisk != tc.onDisk || tc.p.OnDisk() != tc.onDisk {
				t.Errorf("on disk %d:%d, OnDisk %v; want on disk %v", st.Uid, st.Gid, tc.p.OnDisk(), tc.onDisk)
			}
		})
	}
}

func TestParseOverride(t *testing.T) {
	for v, want := range map[string]bool{"0:0:0100644": true, "1000:100:0755": true, "1:2": true, "x:1:0": false, "1": false, "-1:0:0": false} {
		if _, _, ok := parseOverride(v); ok != want {
			t.Errorf("parseOverride(%q) ok=%v, want %v", v, ok, want)
		}
	}
}

// TestDeviceRecord: an empty file carrying a device record (what Mknod leaves where the
// kernel refuses nodes) reads back as the node, with the file's own permissions; Recorded
// keeps the record when it sets the owner; anything else is no device.
func TestDeviceRecord(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tty")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(p, OverrideXattr, []byte(deviceRecord(0, 0, unix.S_IFCHR|0o600, unix.Mkdev(4, 7))), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o620); err != nil {
		t.Fatal(err)
	}
	if err := Recorded.Lchown(p, 0, 5); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	mode, dev, ok := Device(Recorded, p, &st)
	if !ok || mode != unix.S_IFCHR|0o620 || unix.Major(dev) != 4 || unix.Minor(dev) != 7 {
		t.Errorf("Device = %#o %d:%d %v, want char 0620 4:7", mode, unix.Major(dev), unix.Minor(dev), ok)
	}
	if uid, gid, err := Recorded.Owner(p, &st); err != nil || uid != 0 || gid != 5 {
		t.Errorf("Owner = %d:%d %v, want 0:5", uid, gid, err)
	}
	for name, v := range map[string]string{"plain": "0:0:0100644", "bad kind": "0:0:0600:pipe-1-2", "bad number": "0:0:0600:char-x-2"} {
		q := filepath.Join(dir, name)
		if err := os.WriteFile(q, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lsetxattr(q, OverrideXattr, []byte(v), 0); err != nil {
			t.Fatal(err)
		}
		unix.Lstat(q, &st)
		if _, _, ok := Device(Recorded, q, &st); ok {
			t.Errorf("%s (%q) read as a device", name, v)
		}
	}
	// Where nodes are made for real (Host), a record is only an xattr.
	if _, _, ok := Device(Host, p, &st); ok {
		t.Error("Host read a record as a device")
	}
	// A file with content is never a device, whatever it carries.
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	unix.Lstat(p, &st)
	if _, _, ok := Device(Recorded, p, &st); ok {
		t.Error("a file with content read as a device")
	}
}
