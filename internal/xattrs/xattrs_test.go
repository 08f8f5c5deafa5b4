package xattrs

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

func TestKept(t *testing.T) {
	for name, want := range map[string]bool{
		"security.capability": true, "user.mime_type": true,
		"security.selinux": false, "trusted.overlay.opaque": false, "user.overlay.redirect": false,
		"user.containers.override_stat": false, "system.posix_acl_access": false, "trusted.x": false,
	} {
		if got := Kept(name); got != want {
			t.Errorf("Kept(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestImports(t *testing.T) { importguard.Check(t, nil) }
