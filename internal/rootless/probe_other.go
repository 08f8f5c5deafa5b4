//go:build !linux

package rootless

// ModeCopyOnly is the mode where RUN steps cannot run.
const ModeCopyOnly = "COPY/ADD only: RUN steps cannot run (no user namespaces, not root)"

// Probe reports that RUN steps need Linux: namespaces, overlayfs and seccomp are Linux's.
func Probe() Report {
	return Report{
		Checks: []Check{{Name: "platform", Status: StatusMissing, Detail: "RUN steps need Linux", Fix: "build on Linux (or in a Linux VM)"}},
		Mode:   ModeCopyOnly,
		Caveat: "no sandbox: a RUN step fails the build",
	}
}

// ProbeChild does nothing: Probe starts no children here.
func ProbeChild() {}
