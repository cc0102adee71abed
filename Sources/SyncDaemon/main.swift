print("ehr-syncd")
