// Package minirootfs makes a tiny, deterministic root filesystem directory from a statically
// linked busybox (Debian's busybox-static installs one as /bin/busybox). Tests use it as the
// base layer of a sandbox, and the end-to-end examples tar it for `FROM scratch` +
// `ADD rootfs.tar.gz /`.
//
// The tree holds bin/busybox, a symlink to /bin/busybox for every applet busybox lists, an
// etc/passwd and etc/group with root, nobody (65534) and a user app (1000:1000, also a member
// of the supplementary group staff, 50), and the usual empty directories (tmp with mode 1777,
// root with 0700, proc, sys, dev). Every mtime is set to Options.ModTime so that two trees made
// from the same busybox are identical; ownership is root's when the caller runs as root.
package minirootfs
