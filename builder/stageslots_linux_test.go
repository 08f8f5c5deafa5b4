package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-build/strata/executor"
)

// countingRunner records how many RUN steps run at once.
type countingRunner struct {
	now, most atomic.Int32
}

func (r *countingRunner) Run(ctx context.Context, spec executor.Spec) (executor.Result, error) {
	n := r.now.Add(1)
	defer r.now.Add(-1)
	for {
		m := r.most.Load()
		if n <= m || r.most.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(30 * time.Millisecond)
	if err := os.MkdirAll(spec.UpperDir, 0o755); err != nil {
		return executor.Result{}, err
	}
	if err := os.WriteFile(filepath.Join(spec.UpperDir, "f"), []byte(strings.Join(spec.Args, " ")), 0o644); err != nil {
		return executor.Result{}, err
	}
	return executor.Result{UpperDir: spec.UpperDir}, nil
}

// Independent stages build concurrently, but no more of their steps work
// at once than there are CPUs, whatever the stage count (each holds a
// sandbox and a layer writer: memory grew with the stages).
func TestIndependentStagesBoundedByCPUs(t *testing.T) {
	tb := newTestBuild(t, nil)
	r := &countingRunner{}
	tb.runner = r
	n := runtime.NumCPU() + 4
	var src strings.Builder
	for i := range n {
		fmt.Fprintf(&src, "FROM scratch AS s%d\nRUN work %d\n", i, i)
	}
	src.WriteString("FROM scratch\n")
	for i := range n {
		fmt.Fprintf(&src, "COPY --from=s%d /f /s%d/f\n", i, i)
	}
	tb.mustBuild(src.String())
	if most := int(r.most.Load()); most > runtime.NumCPU() {
		t.Errorf("%d RUN steps ran at once, want at most %d (the CPUs)", most, runtime.NumCPU())
	} else if runtime.NumCPU() > 1 && most < 2 {
		t.Errorf("independent stages ran one at a time (%d at once)", most)
	}
}
