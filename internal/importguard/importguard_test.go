package importguard

import "testing"

// TestImports: the guard itself imports nothing of the project.
func TestImports(t *testing.T) { Check(t, nil) }

func TestPermitted(t *testing.T) {
	for _, tc := range []struct {
		rel     string
		allowed []string
		want    bool
	}{
		{"layer", []string{"layer"}, true},
		{"layerx", []string{"layer"}, false},
		{"internal/fsroot", []string{"internal/..."}, true},
		{"internal", []string{"internal/..."}, true},
		{"builder", []string{"internal/..."}, false},
	} {
		if got := permitted(tc.rel, tc.allowed); got != tc.want {
			t.Errorf("permitted(%q, %q) = %v, want %v", tc.rel, tc.allowed, got, tc.want)
		}
	}
}
