package rootless

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// The re-executed command learns it is strata's namespace from these variables. envMode
// is "ids" (the caller and its subordinate ranges mapped) or "single" (the caller only).
const (
	envMode   = "_STRATA_USERNS"
	envWait   = "_STRATA_USERNS_WAIT" // the mapping comes through fd 3, then re-exec
	envParent = "_STRATA_USERNS_PARENT"
	envOuter  = "_STRATA_USERNS_OUTER" // the user namespace Enter ran in
)

// Mode is how this process maps IDs.
type Mode string

const (
	// NotInNamespace: the process runs as it was started (root, or a user who did not
	// re-execute).
	NotInNamespace Mode = ""
	// IDs: a user namespace mapping the caller to root and its subordinate ranges to 1..n,
	// so files can have any owner the image gives them.
	IDs Mode = "ids"
	// Single: a user namespace mapping only the caller, to root; other owners are recorded
	// in an xattr (owners.Recorded).
	Single Mode = "single"
)

// Current is the mode this process runs in.
func Current() Mode { return current }

// current is set by Init in the process Enter started.
var current Mode

// UnavailableError is a user namespace the kernel or a security policy refused.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string {
	switch {
	case errors.Is(e.Err, syscall.ENOSPC):
		return "user namespaces are not allowed here (user.max_user_namespaces is 0, or used up)"
	case errors.Is(e.Err, syscall.EPERM):
		return "user namespaces are not allowed here (refused by a seccomp profile, an LSM, or kernel.unprivileged_userns_clone=0)"
	}
	return fmt.Sprintf("user namespaces are not allowed here (%v)", e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// StoreRoot is the store a build uses without --root: /var/lib/strata for root, else (also
// in the user namespace of a user without root) $XDG_DATA_HOME/strata, by default
// ~/.local/share/strata, as podman and buildah keep theirs.
func StoreRoot(root bool) (string, error) {
	if root {
		return "/var/lib/strata", nil
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "strata"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".local", "share", "strata"), nil
}
