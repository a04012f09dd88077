"""Work shared by replicas through leases on integrations (``keeper``)."""
