// Sets or clears a producer byte-rate quota for one client.id, through the Admin API of the
// broker's own kafka-clients jar (confluent-kafka has no client-quota API). Run as a single-file
// source program: java -cp '<kafka libs>/*' kafka_quota.java BOOTSTRAP CLIENT_ID BYTES_PER_S|none
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;

public class kafka_quota {
    public static void main(String[] args) throws Exception {
        Properties config = new Properties();
        config.put("bootstrap.servers", args[0]);
        Double rate = args[2].equals("none") ? null : Double.valueOf(args[2]);
        ClientQuotaEntity client = new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, args[1]));
        ClientQuotaAlteration.Op op = new ClientQuotaAlteration.Op("producer_byte_rate", rate);
        try (Admin admin = Admin.create(config)) {
            admin.alterClientQuotas(List.of(new ClientQuotaAlteration(client, List.of(op)))).all().get();
        }
    }
}
