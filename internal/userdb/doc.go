// Package userdb reads an image's /etc/passwd and /etc/group and turns a
// USER or --chown value into numeric ids, once for the whole project, with
// the two rule sets docker build (BuildKit) applies:
//
//   - FileOwner is for file operations: COPY and ADD --chown, and the owner
//     of the directory WORKDIR creates under USER. It follows llb.WithUser
//     (how dockerfile2llb turns the value into a ChownOpt) and the solver's
//     readUser: "root" and numbers are ids without a lookup, a number giving
//     uid and gid alike; a user name gives the uid and primary gid of its
//     passwd line; a group name replaces the gid with its group line's. A
//     file that is missing, or a name it does not hold, is no error: the ids
//     stay 0 (or, for a group, what the user part gave).
//   - ExecUser is for the process of a RUN step: BuildKit's executor
//     (oci.GetUser: a "uid:gid" fast path, else moby/sys/user's
//     GetExecUser), the primary gid added to the supplementary groups as
//     BuildKit's spec does, and HOME the way runc finds it. Here an unknown
//     user or group name is an error; an unknown number is not.
//
// Both read the files with moby/sys/user's parser, quirks included, since
// that is what docker build runs: lines are trimmed, empty ones skipped,
// '#' comments skipped in /etc/group only, a field that is not a number
// reads as 0, a missing field as empty, and the first matching line wins.
// A file over 10 MiB is refused, as BuildKit refuses it.
//
// The package takes readers (or an opener) rather than paths: the builder
// reads the image through its merged view of the layers, the executor
// reads /etc inside the sandbox after pivot_root. It imports nothing of
// the project, so both can use it without depending on each other.
package userdb
