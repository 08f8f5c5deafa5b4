// Command benchtool is the Go half of bench/run.sh: it makes the workloads, runs and measures
// the builders, and prints the table. It uses the standard library only, so a static build
// of it can also sit in the bench base images, where the workloads' RUN steps call its fill
// subcommand to write deterministic data.
//
//	benchtool fill [-seed N] [-kind random|text|zero] [-bytes N] [-files N] OUT
//	benchtool workloads [-quick] [-registry HOST:PORT] [-rootfs TAR] DIR
//	benchtool measure -record FILE [-label K=V]... [-also-pid PID] [-image oci:PATH|docker:PATH] -- CMD...
//	benchtool report RESULTS.jsonl
//	benchtool scale-workloads [-quick] [-series S] -list | -point SERIES/SIZE [-registry R] [-stage-bytes N] DIR
//	benchtool scale-report [-cpus N] RESULTS.jsonl
//	benchtool plot [-o OUT.svg] [-cpus N] [-title T] RESULTS.jsonl
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch args := os.Args[2:]; os.Args[1] {
	case "fill":
		err = fillCmd(args)
	case "workloads":
		err = workloadsCmd(args)
	case "measure":
		err = measureCmd(args)
	case "report":
		err = reportCmd(args)
	case "scale-workloads":
		err = scaleWorkloadsCmd(args, os.Stdout)
	case "scale-report":
		err = scaleReportCmd(args, os.Stdout)
	case "plot":
		err = plotCmd(args, os.Stdout)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchtool fill|workloads|measure|report|scale-workloads|scale-report|plot [flags] ...")
	os.Exit(2)
}
