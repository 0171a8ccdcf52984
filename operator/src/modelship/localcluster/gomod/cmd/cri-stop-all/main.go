// cri-stop-all stops and removes every pod sandbox through the CRI, so the
// runtime runs CNI DEL for each (killing tasks directly leaves the CNI
// plugin's iptables chains and netns behind). Used by `modelship local down`.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: cri-stop-all unix:///path/to/containerd.sock")
		os.Exit(2)
	}
	conn, err := grpc.NewClient(os.Args[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	ctrs, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "list containers:", err)
		os.Exit(1)
	}
	var wg sync.WaitGroup
	for _, c := range ctrs.Containers {
		if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			_, _ = rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 5})
		}(c.Id)
	}
	wg.Wait()

	pods, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "list pod sandboxes:", err)
		os.Exit(1)
	}
	failed := 0
	for _, p := range pods.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			fmt.Fprintln(os.Stderr, "stop", p.Metadata.GetNamespace()+"/"+p.Metadata.GetName()+":", err)
			failed++
			continue
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			fmt.Fprintln(os.Stderr, "remove", p.Metadata.GetName()+":", err)
			failed++
		}
	}
	fmt.Printf("stopped %d pod sandboxes (%d failed)\n", len(pods.Items)-failed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
