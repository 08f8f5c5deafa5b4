package builder

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkMetadataStep reports the fixed cost of a metadata step (issue #16: <= 1 ms): a
// --no-cache build of 200 ENV and LABEL steps on scratch, the cache records it writes
// included (they are in the store when the build returns), divided by its steps: the first
// run's on an empty store (every record a new file), and the median of the runs (a rebuild
// of the same steps).
func BenchmarkMetadataStep(b *testing.B) {
	const steps = 200
	src := manyInstructions(steps+1, func(i int) string {
		if i%2 == 0 {
			return fmt.Sprintf("LABEL l%d=value%d", i, i)
		}
		return fmt.Sprintf("ENV K%d=value%d", i, i)
	})
	tb := newTestBuild(b, nil)
	noCache := func(o *Options) { o.NoCache = true }
	var perStep []time.Duration
	for b.Loop() {
		start := time.Now()
		if _, out, err := tb.build(src, noCache); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		perStep = append(perStep, time.Since(start)/steps)
	}
	b.ReportMetric(float64(perStep[0].Microseconds())/1000, "first-ms/step")
	slices.Sort(perStep)
	b.ReportMetric(float64(perStep[len(perStep)/2].Microseconds())/1000, "median-ms/step")
}
