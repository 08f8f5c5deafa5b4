package main

// frontendCases are the end-to-end cases of one feature area (see e2eCases).
func frontendCases() []e2eCase {
	return []e2eCase{
		{name: "frontend-bind-rw", base: "busybox:latest",
			want: "changed\nchanged\ninput\ninput.txt\noriginal\nf\noriginal\n"},
		{name: "frontend-cache-from", base: "busybox:latest",
			want: "seeded\nseeded\nmore\n1000 700\n0\n"},
	}
}
