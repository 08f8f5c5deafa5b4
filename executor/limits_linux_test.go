package executor

import (
	"bytes"
	"strings"
	"testing"
)

// TestStepHostsLimitsShm: --add-host's lines end the step's /etc/hosts and --ulimit's limits
// are the command's, under both isolations; --shm-size sizes the sandbox's /dev/shm, and
// chroot isolation, which has a directory there, says once that it ignores it.
func TestStepHostsLimitsShm(t *testing.T) {
	unguardAfter(t)
	base := newBase(t)
	script := `tail -n 2 /etc/hosts; echo "nofile $(ulimit -n) $(ulimit -Hn) core $(ulimit -c)"; df -k /dev/shm | awk 'NR==2 {print "shm " $2}'`
	hosts := "10.1.2.3\tmyhost\nfd00::1\tv6host\nnofile 100 200 core 0\n"
	for _, tt := range []struct {
		iso  Isolation
		want string
	}{
		{IsolationSandbox, hosts + "shm 16384"},
		{IsolationChroot, hosts},
	} {
		t.Run(string(tt.iso)+"-isolation", func(t *testing.T) {
			var warnings bytes.Buffer
			e := New(Options{Isolation: tt.iso, Warnings: &warnings})
			for range 2 {
				s := newStep(t, []string{base}, script)
				s.spec.Network = NetworkHost
				s.spec.ExtraHosts = []HostIP{{Host: "myhost", IP: "10.1.2.3"}, {Host: "v6host", IP: "fd00::1"}}
				s.spec.Ulimits = []Ulimit{{Name: "core", Soft: 0, Hard: 0}, {Name: "nofile", Soft: 100, Hard: 200}}
				s.spec.ShmSize = 16 << 20
				s.mustRun(t, e)
				got := s.out()
				if tt.iso == IsolationChroot {
					// A directory of the copy, with no /proc for df: what df says is moot.
					if before, _, ok := strings.Cut(got, "core 0"); ok {
						got = before + "core 0\n"
					}
				}
				if got != tt.want {
					t.Errorf("the step printed:\n%s\nwant:\n%s", got, tt.want)
				}
			}
			ignored := strings.Count(warnings.String(), "--shm-size is ignored under --isolation=chroot")
			if want := map[Isolation]int{IsolationSandbox: 0, IsolationChroot: 1}[tt.iso]; ignored != want {
				t.Errorf("%d warnings that --shm-size is ignored, want %d:\n%s", ignored, want, warnings.String())
			}
		})
	}
}
