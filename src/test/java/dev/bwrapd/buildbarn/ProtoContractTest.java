package dev.bwrapd.buildbarn;

import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Descriptors.MethodDescriptor;
import com.google.protobuf.Descriptors.ServiceDescriptor;
import dev.bwrapd.buildbarn.proto.CheckReadinessRequest;
import dev.bwrapd.buildbarn.proto.POSIXResourceUsage;
import dev.bwrapd.buildbarn.proto.RunRequest;
import dev.bwrapd.buildbarn.proto.RunResponse;
import dev.bwrapd.buildbarn.proto.RunnerOuterClass;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The project's runner.proto and resourceusage.proto, as compiled, against the wire contract
 * (Buildbarn runner mode): a bb_worker only talks to bwrapd if every package, service, message
 * and field name, number, type and label is Buildbarn's.
 */
class ProtoContractTest {

    @Test
    void theServiceIsBuildbarnsRunner() {
        ServiceDescriptor runner = RunnerOuterClass.getDescriptor().findServiceByName("Runner");
        assertEquals("buildbarn.runner.Runner", runner.getFullName());
        assertEquals(List.of(
                "CheckReadiness(buildbarn.runner.CheckReadinessRequest) returns (google.protobuf.Empty)",
                "Run(buildbarn.runner.RunRequest) returns (buildbarn.runner.RunResponse)"),
                runner.getMethods().stream().map(ProtoContractTest::method).toList());
    }

    @Test
    void checkReadinessRequest() {
        assertFields(CheckReadinessRequest.getDescriptor(), "buildbarn.runner.CheckReadinessRequest",
                "optional string path = 1");
    }

    @Test
    void runRequest() {
        assertFields(RunRequest.getDescriptor(), "buildbarn.runner.RunRequest",
                "repeated string arguments = 1",
                "repeated buildbarn.runner.RunRequest.EnvironmentVariablesEntry environment_variables = 2",
                "optional string working_directory = 3",
                "optional string stdout_path = 4",
                "optional string stderr_path = 5",
                "optional string input_root_directory = 6",
                "optional string temporary_directory = 7",
                "optional string server_logs_directory = 8");
        FieldDescriptor environment = RunRequest.getDescriptor().findFieldByName("environment_variables");
        assertEquals(true, environment.isMapField(), "environment_variables is a map<string, string>");
        assertFields(environment.getMessageType(), "buildbarn.runner.RunRequest.EnvironmentVariablesEntry",
                "optional string key = 1", "optional string value = 2");
    }

    @Test
    void runResponse() {
        assertFields(RunResponse.getDescriptor(), "buildbarn.runner.RunResponse",
                "optional int64 exit_code = 1",
                "repeated google.protobuf.Any resource_usage = 2");
    }

    @Test
    void posixResourceUsage() {
        Descriptor usage = POSIXResourceUsage.getDescriptor();
        assertFields(usage, "buildbarn.resourceusage.POSIXResourceUsage",
                "optional google.protobuf.Duration user_time = 1",
                "optional google.protobuf.Duration system_time = 2",
                "optional int64 maximum_resident_set_size = 3",
                "optional int64 page_reclaims = 7",
                "optional int64 page_faults = 8",
                "optional int64 swaps = 9",
                "optional int64 block_input_operations = 10",
                "optional int64 block_output_operations = 11",
                "optional int64 messages_sent = 12",
                "optional int64 messages_received = 13",
                "optional int64 signals_received = 14",
                "optional int64 voluntary_context_switches = 15",
                "optional int64 involuntary_context_switches = 16",
                "optional string termination_signal = 17");
        assertEquals(List.of("4-6"), usage.toProto().getReservedRangeList().stream()
                .map(r -> r.getStart() + "-" + (r.getEnd() - 1)).toList(), "fields 4-6 are reserved");
        assertEquals("type.googleapis.com/buildbarn.resourceusage.POSIXResourceUsage",
                com.google.protobuf.Any.pack(POSIXResourceUsage.getDefaultInstance()).getTypeUrl());
    }

    private static void assertFields(Descriptor message, String fullName, String... fields) {
        assertEquals(fullName, message.getFullName());
        assertEquals(List.of(fields), message.getFields().stream().map(ProtoContractTest::field).toList(), fullName);
    }

    /** A field as .proto spells it, with proto3's implicit presence written "optional" (its label in the descriptor). */
    private static String field(FieldDescriptor f) {
        String type = switch (f.getType()) {
            case MESSAGE -> f.getMessageType().getFullName();
            case ENUM -> f.getEnumType().getFullName();
            default -> f.getType().name().toLowerCase(java.util.Locale.ROOT);
        };
        return (f.isRepeated() ? "repeated" : "optional") + " " + type + " " + f.getName() + " = " + f.getNumber();
    }

    private static String method(MethodDescriptor m) {
        return m.getName() + "(" + m.getInputType().getFullName() + ") returns (" + m.getOutputType().getFullName() + ")";
    }
}
