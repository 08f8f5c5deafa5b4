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
