package overlayfs

import (
	"testing"

	"github.com/strata-build/strata/internal/importguard"
)

func TestIsIndirection(t *testing.T) {
	for name, want := range map[string]bool{
		"trusted.overlay.redirect": true, "user.overlay.metacopy": true,
		"trusted.overlay.opaque": false, "user.overlay.origin": false, "user.redirect": false,
	} {
		if got := IsIndirection(name); got != want {
			t.Errorf("IsIndirection(%q) = %t, want %t", name, got, want)
		}
	}
}

func TestImports(t *testing.T) { importguard.Check(t, nil) }
