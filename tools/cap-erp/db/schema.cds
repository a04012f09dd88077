// S/4HANA's maintenance order header, as far as a sync of work orders needs it. Names and lengths
// follow SAP's own (I_MaintenanceOrder, API_MAINTENANCEORDER): a tool that syncs with this model
// meets the same keys, types and server behaviour as with the real ERP.
namespace s4;

entity MaintenanceOrder {
      // SAP's order number: 12 characters, numeric orders with leading zeros (000004000123).
  key MaintenanceOrder           : String(12);
      MaintenanceOrderDesc       : String(40);
      MaintenanceOrderType       : String(4);
      MaintPriority              : String(1);
      // 0 outstanding, 1 in planning, 2 in preparation, 3 in execution, 4 post-execution,
      // 5 completed (SAP's processing phase, one character).
      MaintenanceProcessingPhase : String(1) default '0';
      IsMarkedForDeletion        : Boolean default false;
      // Set by the server when the order is created (SAP keeps date and time apart); a client
      // may send them, as a migration would.
      CreationDate               : Date      @cds.on.insert: $now;
      CreationTime               : Time      @cds.on.insert: $now;
      // Stamped by the server on every create and update; its value is the order's ETag, so a
      // write with a stale If-Match gets 412.
      LastChangeDateTime         : Timestamp @cds.on.insert: $now  @cds.on.update: $now  @odata.etag;
}

// SAP's change documents (CDHDR) in brief: one row per create or update of an order, written by
// the service (srv/service.js) in the write's own transaction. Not served: the tests read it
// from the database to count how many times each order was written.
entity MaintenanceOrderChange {
  key ID               : UUID;
      MaintenanceOrder : String(12);
      // CREATE or UPDATE
      Kind             : String(6);
}
