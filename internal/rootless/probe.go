package rootless

// Check is one line of the report: what was looked at, whether it is there, what was found,
// and for a missing thing the one-line fix.
type Check struct {
	Name   string
	Status string // StatusOK, StatusMissing or StatusNA
	Detail string
	Fix    string
}

// Report is what Probe found, and the mode a build would use here.
type Report struct {
	Checks []Check
	Mode   string
	// Caveat is one line naming the sandbox guarantees Mode does not give (or why builds
	// fail here); "" when the full sandbox holds.
	Caveat string
}

// The statuses of a check.
const (
	StatusOK      = "ok"
	StatusMissing = "missing"
	StatusNA      = "n/a"
)
