package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/internal/owners"
	"github.com/strata-build/strata/internal/rootless"
)

// usesStore marks the commands that work on the store, which a user without root runs in
// a user namespace: there it owns files as the image's owners (see enterUserNamespace).
var usesStore = map[string]string{"store": "true"}

// noUserNamespace is why this process, run by a user without root, is not in a user
// namespace: RUN steps cannot run, and COPY/ADD record owners instead of setting them.
var noUserNamespace error

// enterUserNamespace re-executes a store command of a user without root in a user
// namespace where that user is root and its subordinate IDs (/etc/subuid) are the
// image's other IDs, as podman and `buildah unshare` do: the store then holds the same
// trees a root build's does (owners, setuid bits, device nodes in the user's range), RUN
// steps get a sandbox, and mounts end with the process. Where user namespaces are not
// allowed, the command goes on without one.
func enterUserNamespace(cmd *cobra.Command) error {
	if os.Geteuid() == 0 || rootless.Current() != rootless.NotInNamespace || cmd.Annotations["store"] == "" {
		return nil
	}
	m, err := rootless.LookupMapping()
	if err != nil {
		return fmt.Errorf("reading subordinate IDs: %w", err)
	}
	code, err := rootless.Enter(m)
	var no *rootless.UnavailableError
	if errors.As(err, &no) {
		noUserNamespace = no
		return nil
	}
	if err != nil {
		return err
	}
	os.Exit(code)
	return nil
}

// withRootlessHint adds to a failed RUN of a rootless build what root of a user namespace
// cannot do, which may be why it failed.
func withRootlessHint(err error) error {
	var exit *builder.ExitError
	if !errors.As(err, &exit) {
		return err
	}
	switch rootless.Current() {
	case rootless.Single:
		return fmt.Errorf("%w (rootless without subordinate IDs: RUN is root of a user namespace that maps your uid alone: no chown to other IDs, no mknod; run strata doctor)", err)
	case rootless.IDs:
		return fmt.Errorf("%w (rootless: RUN is root of a user namespace: no mknod of devices, no mounts; run strata doctor)", err)
	}
	return err
}

// isolationMode is --isolation, else $STRATA_ISOLATION.
func (o *buildOptions) isolationMode() (executor.Isolation, error) {
	v, from := o.isolation, "--isolation"
	if v == "" {
		v, from = os.Getenv("STRATA_ISOLATION"), "STRATA_ISOLATION"
	}
	switch v {
	case "", "sandbox", "default":
		// "default" is docker build's only value on Linux (its others are Windows').
		return executor.IsolationSandbox, nil
	case "chroot":
		return executor.IsolationChroot, nil
	}
	return "", fmt.Errorf("%s %q: want sandbox or chroot", from, v)
}

// runUnavailable is why RUN steps cannot run for a user without root outside a user
// namespace, or nil.
func runUnavailable() error {
	if os.Geteuid() == 0 {
		return nil
	}
	why := "not running as root"
	if noUserNamespace != nil {
		why = noUserNamespace.Error()
	}
	return fmt.Errorf("RUN steps cannot run here: %s, and strata is not root (COPY/ADD-only builds work; run strata doctor)", why)
}

// ownerPolicy is how this process gives files their image owners: it sets them where it
// can own files as any ID the image uses (root, or root of a namespace mapping the user's
// subordinate IDs, where device nodes are recorded), and records them in an xattr where it
// cannot.
func ownerPolicy() owners.Policy {
	switch {
	case os.Geteuid() != 0 || rootless.Current() == rootless.Single:
		return owners.Recorded
	case rootless.Current() == rootless.IDs:
		return owners.Mapped
	}
	return owners.Host
}

// newUnshareCmd runs a command in the user namespace the store commands of a user without
// root run in, as `buildah unshare` and `podman unshare` do: where the store's files,
// owned by the user's subordinate IDs, can be removed or inspected.
func newUnshareCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "unshare [--] COMMAND [ARG...]",
		Short: "Run a command in the user namespace strata's store commands run in (rootless)",
		Long: `Run COMMAND in the user and mount namespace in which strata builds for a user
without root: there the user is root and its subordinate IDs are the files' owners, so
"strata unshare rm -rf ~/.local/share/strata" removes a store the user alone cannot.
Run as root, COMMAND simply runs.`,
		Args:                  cobra.MinimumNArgs(1),
		Annotations:           usesStore,
		DisableFlagsInUseLine: true,
		RunE: func(_ *cobra.Command, args []string) error {
			prog, err := exec.LookPath(args[0])
			if err != nil {
				return err
			}
			return syscall.Exec(prog, args, os.Environ())
		},
	}
	// COMMAND's own flags are its: strata unshare sh -c '...'.
	cmd.Flags().SetInterspersed(false)
	return cmd
}
