package main

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// flagCases are the end-to-end cases of one feature area (see e2eCases).
func flagCases() []e2eCase {
	return []e2eCase{
		// The sandbox's side of docker build's flags: the RUN step sees the hosts, limits
		// and /dev/shm size (strata's own hard nofile limit is above 2048 on any CI host);
		// -q changes no output but the progress.
		{name: "flags-sandbox", base: "busybox:latest",
			args: []string{"--add-host", "myhost:10.1.2.3", "--add-host", "v6host=[fd00::1]",
				"--ulimit", "nofile=1024:2048", "--ulimit", "core=0", "--shm-size", "16m",
				"--provenance=false", "--sbom=false", "--rm", "--load", "-q"},
			want: "10.1.2.3\tmyhost\nfd00::1\tv6host\nnofile 1024 2048\ncore 0\nshm 16384\n"},
		// docker build's --build-context, --pull, --no-cache-filter and --annotation (builder side).
		{name: "flags-context", base: "busybox:latest",
			args: []string{"--build-context", "extra=" + e2eRoot + "/flags-context/extra",
				"--build-context", "tools=" + e2eRoot + "/flags-context/tools",
				"--pull", "--no-cache-filter", "build",
				"--annotation", "org.example.flag=yes", "--annotation", "manifest-descriptor:org.example.desc=1"},
			want: "hello from extra\nmsg from tools\nbuilt\n",
			check: func(t *testing.T, img v1.Image) {
				m, err := img.Manifest()
				if err != nil || m.Annotations["org.example.flag"] != "yes" || len(m.Annotations) != 1 {
					t.Errorf("manifest annotations %v, %v: want org.example.flag=yes alone", m.Annotations, err)
				}
			}},
	}
}
