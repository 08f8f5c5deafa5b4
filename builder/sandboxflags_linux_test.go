package builder

import (
	"slices"
	"strings"
	"testing"

	"github.com/strata-build/strata/executor"
)

// TestSandboxFlagsKeyed: --add-host, --ulimit and --shm-size reach the RUN's spec, and a
// build that changes any of them runs the step again (BuildKit keys extraHosts and ulimits
// too); the same values hit the cache. A COPY does not depend on them and stays cached.
func TestSandboxFlagsKeyed(t *testing.T) {
	const df = "FROM scratch\nCOPY one.txt /one\nRUN write /ran yes\n"
	hosts := []executor.HostIP{{Host: "myhost", IP: "10.1.2.3"}}
	limits := []executor.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}}
	set := func(h []executor.HostIP, u []executor.Ulimit, shm int64) func(*Options) {
		return func(o *Options) { o.ExtraHosts, o.Ulimits, o.ShmSize = h, u, shm }
	}
	tb := newTestBuild(t, map[string]string{"one.txt": "1"})
	runner := tb.runner.(*fakeRunner)
	tb.mustBuild(df, set(hosts, limits, 16<<20))
	got := runner.runs[0]
	if !slices.Equal(got.ExtraHosts, hosts) || !slices.Equal(got.Ulimits, limits) || got.ShmSize != 16<<20 {
		t.Fatalf("the RUN's spec has hosts %v, ulimits %v, shm %d", got.ExtraHosts, got.Ulimits, got.ShmSize)
	}
	for _, tt := range []struct {
		name  string
		mod   func(*Options)
		reran bool
	}{
		{"same flags", set(hosts, limits, 16<<20), false},
		{"another host", set([]executor.HostIP{{Host: "myhost", IP: "10.1.2.4"}}, limits, 16<<20), true},
		{"another ulimit", set(hosts, []executor.Ulimit{{Name: "nofile", Soft: 1024, Hard: 4096}}, 16<<20), true},
		{"another shm size", set(hosts, limits, 32<<20), true},
		{"none of them", set(nil, nil, 0), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := runner.count()
			_, out := tb.mustBuild(df, tt.mod)
			if reran := runner.count() > before; reran != tt.reran {
				t.Errorf("RUN ran again: %t, want %t\n%s", reran, tt.reran, out)
			}
			if !strings.Contains(out, "CACHED") {
				t.Errorf("the COPY missed the cache:\n%s", out)
			}
		})
	}
}
