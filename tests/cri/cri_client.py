"""A small CRI client: the calls a kubelet makes to the runtime for a pod's network, over the
CRI gRPC API (runtime.v1) of api.proto, whose Python stubs scripts/e2e-cri.sh generates at test
time into STUBS_DIR.

usage: cri_client.py STUBS_DIR SOCKET status
       cri_client.py STUBS_DIR SOCKET run NAME NAMESPACE UID CGROUP_PARENT LOG_DIR   (prints the pod id)
       cri_client.py STUBS_DIR SOCKET pod-status POD_ID    (JSON: state, ip)
       cri_client.py STUBS_DIR SOCKET stop POD_ID
       cri_client.py STUBS_DIR SOCKET remove POD_ID
Each answer is one line of JSON on stdout; a gRPC error exits 1 with its code and message.
"""

import json
import sys

import grpc

TIMEOUT = 60


def main():
    stubs, socket, command, *args = sys.argv[1:]
    sys.path.insert(0, stubs)
    import api_pb2 as cri
    import api_pb2_grpc as cri_grpc

    channel = grpc.insecure_channel(f"unix://{socket}")
    runtime = cri_grpc.RuntimeServiceStub(channel)
    try:
        if command == "status":
            reply = runtime.Status(cri.StatusRequest(verbose=False), timeout=TIMEOUT)
            conditions = {c.type: {"status": c.status, "reason": c.reason, "message": c.message}
                          for c in reply.status.conditions}
            print(json.dumps(conditions))
        elif command == "run":
            name, namespace, uid, cgroup_parent, log_dir = args
            config = cri.PodSandboxConfig(
                metadata=cri.PodSandboxMetadata(name=name, namespace=namespace, uid=uid, attempt=0),
                hostname=name,
                log_directory=log_dir,
                labels={"io.kubernetes.pod.name": name},
                linux=cri.LinuxPodSandboxConfig(
                    cgroup_parent=cgroup_parent,
                    security_context=cri.LinuxSandboxSecurityContext(
                        namespace_options=cri.NamespaceOption(network=cri.POD, pid=cri.POD, ipc=cri.POD)),
                ),
            )
            reply = runtime.RunPodSandbox(cri.RunPodSandboxRequest(config=config), timeout=TIMEOUT)
            print(json.dumps({"id": reply.pod_sandbox_id}))
        elif command == "pod-status":
            reply = runtime.PodSandboxStatus(cri.PodSandboxStatusRequest(pod_sandbox_id=args[0]),
                                             timeout=TIMEOUT)
            status = reply.status
            print(json.dumps({
                "state": cri.PodSandboxState.Name(status.state),
                "ip": status.network.ip,
                "additional_ips": [ip.ip for ip in status.network.additional_ips],
            }))
        elif command == "stop":
            runtime.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=args[0]), timeout=TIMEOUT)
            print("{}")
        elif command == "remove":
            runtime.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=args[0]), timeout=TIMEOUT)
            print("{}")
        else:
            sys.exit(f"unknown command {command}")
    except grpc.RpcError as err:
        print(json.dumps({"error": str(err.code()), "message": err.details()}))
        sys.exit(1)


if __name__ == "__main__":
    main()
