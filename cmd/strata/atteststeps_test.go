package main

import "testing"

// TestImageIdentifier: a base's source step names it as BuildKit's LLB does, normalized
// and pinned to the digest the build resolved it to.
func TestImageIdentifier(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tt := range []struct{ ref, digest, want string }{
		{"alpine", d, "docker-image://docker.io/library/alpine:latest@" + d},
		{"alpine:3.20", d, "docker-image://docker.io/library/alpine:3.20@" + d},
		{"ghcr.io/org/app:1", d, "docker-image://ghcr.io/org/app:1@" + d},
		{"127.0.0.1:5000/busybox:latest", d, "docker-image://127.0.0.1:5000/busybox:latest@" + d},
		{"alpine@" + d, "", "docker-image://docker.io/library/alpine@" + d},
		{"alpine:3@" + d, d, "docker-image://docker.io/library/alpine:3@" + d},
		{"alpine", "", "docker-image://docker.io/library/alpine:latest"},
	} {
		if got := imageIdentifier(tt.ref, tt.digest); got != tt.want {
			t.Errorf("imageIdentifier(%q, %q) = %q, want %q", tt.ref, tt.digest, got, tt.want)
		}
	}
}
