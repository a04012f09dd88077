// A create whose key exists is CAP's ENTITY_ALREADY_EXISTS, which its HTTP layer answers with
// 400. Node's built-in SQLite driver raises an error CAP does not translate, answered with 500,
// which a client would take for a server fault and retry: this check gives CAP's own answer.
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
