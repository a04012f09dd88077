using {s4} from '../db/schema';

// OData v4 at /odata/v4/maintenance/MaintenanceOrder. No authentication: the server listens on
// loopback for the tests only.
@path: '/odata/v4/maintenance'
service MaintenanceOrderService {
  entity MaintenanceOrder as projection on s4.MaintenanceOrder;
}
