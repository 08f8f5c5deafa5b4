// agentcheck lists the keys of the SSH agent at the socket given and has it sign, as ssh
// would: the end-to-end test copies it (built static) into an image, since busybox has no
// ssh client.
package main

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/crypto/ssh/agent"
)

func main() {
	c, err := net.Dial("unix", os.Args[1])
	if err != nil {
		fmt.Println("dial:", err)
		os.Exit(1)
	}
	a := agent.NewClient(c)
	keys, err := a.List()
	if err != nil {
		fmt.Println("list:", err)
		os.Exit(1)
	}
	for _, k := range keys {
		if _, err := a.Sign(k, []byte("strata")); err != nil {
			fmt.Println("sign:", err)
			os.Exit(1)
		}
		fmt.Println(k.Comment, "signs")
	}
	if err := a.RemoveAll(); err != nil {
		fmt.Println("remove refused")
	}
}
