package main

// flagCases are the end-to-end cases of one feature area (see e2eCases).
func flagCases() []e2eCase {
	return []e2eCase{
		// The sandbox's side of docker build's flags: the RUN step sees the hosts, limits
		// and /dev/shm size (strata's own hard nofile limit is above 2048 on any CI host).
		{name: "flags-sandbox", base: "busybox:latest",
			args: []string{"--add-host", "myhost:10.1.2.3", "--add-host", "v6host=[fd00::1]",
				"--ulimit", "nofile=1024:2048", "--ulimit", "core=0", "--shm-size", "16m",
				"--provenance=false", "--sbom=false", "--rm", "--load"},
			want: "10.1.2.3\tmyhost\nfd00::1\tv6host\nnofile 1024 2048\ncore 0\nshm 16384\n"},
	}
}
