package executor

import (
	"strings"
	"testing"
)

// TestOverlayIsVolatile: the step's root overlay is mounted volatile, so its unmount, when
// the step's namespace goes away, does not sync the whole filesystem the upper dir is on
// (~10 ms a step, more on a busy disk); and what the step wrote is in the upper dir all the
// same once Run returns.
func TestOverlayIsVolatile(t *testing.T) {
	base := newBase(t)
	script := `echo kept > /f; awk '$5 == "/" { print $NF }' /proc/self/mountinfo`
	s := newStep(t, []string{base}, script).mustRun(t, New(Options{}))
	// Newer kernels show the option as fsync=volatile.
	opts := "," + s.out() + ","
	if !strings.Contains(opts, ",volatile,") && !strings.Contains(opts, ",fsync=volatile,") {
		t.Errorf("root mount options %q: want volatile", s.out())
	}
	if got := listUpper(t, s.spec.UpperDir); !strings.Contains(got, "f file 644") {
		t.Errorf("upper dir:\n%s", got)
	}
}
