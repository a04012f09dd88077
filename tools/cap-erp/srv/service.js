// CAP on HANA answers a create whose key exists with 400 ENTITY_ALREADY_EXISTS; on Node's
// built-in SQLite driver it answers 500 (the driver's error is not translated), which a client
// would take for a server fault and retry. This restores the answer a real system gives.
const cds = require('@sap/cds')

module.exports = class MaintenanceOrderService extends cds.ApplicationService {
  init() {
    const { MaintenanceOrder } = this.entities
    this.before('CREATE', MaintenanceOrder, async (req) => {
      const key = { MaintenanceOrder: req.data.MaintenanceOrder }
      if (await SELECT.one.from(MaintenanceOrder).columns('MaintenanceOrder').where(key)) {
        req.reject(400, 'ENTITY_ALREADY_EXISTS', [req.data.MaintenanceOrder])
      }
    })
    return super.init()
  }
}
