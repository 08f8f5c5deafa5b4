// Package xattrs holds the one rule for which extended attributes an image layer carries,
// shared by the layer writer, the extractor and COPY, and (on Linux) the one way they are
// read: File lists and gets them with growing buffers, a filesystem without xattrs
// (ENOTSUP) having none. The layer writer, COPY and the sandbox's copy fallback read
// through it.
package xattrs

import "strings"

// Kept reports whether a layer carries the xattr name: the file capability (ping's
// cap_net_raw) and user.* attributes, as BuildKit and containerd keep them; not
// overlayfs' own (user.overlay.*, trusted.overlay.*), which would redirect or hide files in
// a reader's overlay, and not the owner records of rootless builds (user.containers.*),
// which stand for the owner the layer's headers already give.
func Kept(name string) bool {
	for _, p := range []string{"user.overlay.", "user.containers."} {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	return name == "security.capability" || strings.HasPrefix(name, "user.")
}
