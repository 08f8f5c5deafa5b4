package executor

import (
	"fmt"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// minNofile is the fewest open files a step can be started with.
const minNofile = 16

// CheckUlimit refuses a limit the step's init could not set: an unknown name, a soft limit
// above the hard one, or a hard limit above strata's own (the init inherits strata's limits,
// and raising a hard limit takes CAP_SYS_RESOURCE, which a container often lacks), or too
// few open files to start the step.
func CheckUlimit(u Ulimit) error {
	res, ok := ulimitNames[u.Name]
	if !ok {
		return fmt.Errorf("unknown limit %q", u.Name)
	}
	soft, hard := rlimitValue(u.Soft), rlimitValue(u.Hard)
	if res == unix.RLIMIT_NOFILE && soft < minNofile {
		// The step's init holds its config, report and stdio descriptors while it starts
		// the command: below this the step fails with "too many open files" before it runs.
		return fmt.Errorf("nofile below %d leaves a step no descriptors to start with", minNofile)
	}
	if soft > hard {
		return fmt.Errorf("the soft limit %s is above the hard limit %s", limitText(soft), limitText(hard))
	}
	var have unix.Rlimit
	if err := unix.Getrlimit(res, &have); err != nil {
		return fmt.Errorf("reading strata's own %s limit: %w", u.Name, err)
	}
	if hard > have.Max {
		return fmt.Errorf("the hard limit %s is above strata's own (%s), which a step cannot raise: raise strata's (ulimit -H) or ask for less", limitText(hard), limitText(have.Max))
	}
	return nil
}

func limitText(v uint64) string {
	if v == ^uint64(0) {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// setUlimits sets the step's limits on the init, before the command is forked: the command
// inherits them. syscall.Setrlimit, not x/sys's: for RLIMIT_NOFILE it also stops the Go
// runtime from putting back, in the forked command, the soft limit the init started with.
func setUlimits(limits []Ulimit) error {
	for _, u := range limits {
		lim := syscall.Rlimit{Cur: rlimitValue(u.Soft), Max: rlimitValue(u.Hard)}
		if err := syscall.Setrlimit(ulimitNames[u.Name], &lim); err != nil {
			return setupErr("setting ulimit", u.String(), err)
		}
	}
	return nil
}
